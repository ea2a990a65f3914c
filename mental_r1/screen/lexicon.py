"""The crisis lexicon: phrasing of suicide and self-harm risk, by category, matched on normalised text.

Categories follow the Columbia Suicide Severity Rating Scale, the warning signs that crisis services list
(988 Lifeline, AFSP: talking about wanting to die or to kill oneself, looking for a way to do it, feeling
hopeless or trapped, unbearable pain, being a burden, saying goodbye, giving things away, self-harm) and the
crisis categories of "Between Help and Harm" (JMIR Mental Health 2026); docs/crisis-taxonomy.md maps each
to its sources and level. This module holds the statements (ideation, death wish, method, self-harm,
farewell, burdensomeness, hopelessness, violent thoughts); behaviour.py the acts (intent and plan, means,
preparations, attempt in progress, death as a gift, weaker farewells) and the cues that combine with them.
Each category's phrases have a strength: CRISIS phrases name death, suicide, a method, an act or self-harm;
CONCERN phrases are warning signs that do not; MENTION phrases (behaviour.py) are no signal alone. text.py
lowers the level of negated, past and third-person mentions and raises weak phrases that come with a cue.

Patterns are regular expressions over `normalize.variants` output (lower case, apostrophes as "'", one
space between words), written for the *kind* of language, not for any dataset's rows. `{NAME}` is a
fragment of _F ({SELF}: a reflexive pronoun of anyone; text.py decides whose); `{!a b c}` is "not followed
by the word a, b or c" (for complements that turn a phrase ordinary: "don't want to live *in* this city").
Every category has positive and negative sentences in tests/mental_r1/test_screen_text.py. To change the
lexicon: add the phrase and a test sentence each way, then compare `python training/screen_probe.py` (the
dev part of the crisis probe; the held-out part only to report) and the flag rates of
`python training/screen_eval.py --text-only` on part A of t-sid before and after. Everything is compiled
once, at import.
"""

from __future__ import annotations

import re

from mental_r1.screen.behaviour import BEHAVIOUR, CONCERN, CRISIS, CUES, FRAGMENTS, MENTION, RETURN

_F = {
    # reflexive and possessive pronouns of anyone: text.py reads the subject from them
    "SELF": r"(?:my ?self|meself|ourselves|himself|herself|themselves|themself|yourself|yourselves|urself)",
    "POSS": r"(?:my|his|her|their|your|ur|our)",
    "TO": r"(?:to|2|ta)",
    # not "going to die": fear of dying (panic, trauma narratives) is not a wish to die
    "WANT": r"(?:want|wants|wanted|wanting|wanna|need|needs|needed|ready|deserve|deserves|plan|plans|planned"
            r"|planning|trying|tryna|decided|wish|wished|wishing|hope|hoping|long|longing|pray|praying)",
    "NOT": r"(?:not|never|no longer|isn'?t|ain'?t|wasn'?t|aren'?t|don'?t|doesn'?t|didn'?t|won'?t|wouldn'?t"
           r"|can'?t|cannot)",
    "CANT": r"(?:can't|cannot|cant|can not)",
    "PILLS": r"(?:pills|tablets|meds|medication|medicine|painkillers|sleeping pills|tylenol|paracetamol"
             r"|acetaminophen|ibuprofen|xanax|benadryl|insulin|antidepressants|opioids|oxy)",
    "BODY": r"(?:skin|arms?|legs?|thighs?|stomach|wrists?|body|flesh|hips?|forearms?|veins?)",
    "CUT": r"(?:cut|cuts|cutting|carve|carves|carved|carving|slice|slices|sliced|slicing|slash|slashed"
           r"|slashing|slit|slits|slitting)",
    "JUMP": r"(?:jump|jumps|jumped|jumping|leap|leaping|step|stepping|stepped|walk|walking|throw myself"
            r"|throwing myself|lie down|lay down)",
}

_F.update(FRAGMENTS)

_LEXICON: dict[str, dict[str, list[str]]] = {
    # wanting, planning or attempting to kill oneself; the word suicide
    "suicidal_ideation": {CRISIS: [
        (r"\b(?:kill|kills|killed|killing|killin|off|offed|offing|unalive|unaliving|unalived|end|ending) {SELF}"
         r"{!laughing at_the_gym at_work}"),
        r"\bkill (?:\S+ ){1,3}(?:and|then|or|and then) {SELF}",        # "kill him and then myself"
        r"\bkms\b", r"\bkys\b",                                          # "kill myself", "kill yourself"
        r"\bsuicid(?:e|es|al|ality)\b{!squad}", r"\bsewer ?slide\b", r"\bunaliv(?:e|ed|ing)\b",
        (r"\b(?:end|ends|ended|ending|take|takes|took|taking|taken) {POSS} (?:own )?(?:life|lives)\b"
         r"{!savings story back insurance seriously in into to for as more}"),
        r"\b(?:end|ending) (?:it all|it now|it tonight|it today|it soon|everything|the pain|my pain)\b",
        r"\bjust end it\b",
        (r"(?<!heart and )\b{WANT} {TO} (?:die|be dead|not be alive|not exist|not wake up|not live)\b"
         r"{!of_embarrassment of_laughter laughing}"),
        # indirect: the thought of it, euphemisms ("checking out", "the long sleep"), looking for a way
        (r"\b(?:think|thinks|thinking|thinkin|thought|thoughts|idea) (?:about|bout|abt|of) (?:how (?:i would |i'?d |to )?)?"
         r"(?:ending (?:things|it|it all|my life)|end (?:things|it|it all|my life)|checking out|not being (?:alive|here|around)"
         r"|not existing|the long sleep|killing myself|how to die|disappearing for good)\b{!with between off for}"),
        r"\b(?:the )?(?:only )?way out is (?:out|death|to die|dying)\b",
        r"\b(?:ctrl|control)[ +-]*alt[ +-]*del(?:ete)? (?:myself|me|my life|my existence)\b",
        (r"\b(?:don'?t|do not|can'?t|cannot) see myself (?:still )?(?:being )?(?:around|alive|here) (?:by|past|after|in|at"
         r"|for|much)\b"),
        r"\bmake it look like an accident\b",
        (r"\b(?:looking up|looked up|googling|googled|searching|searched|researching|researched) (?:\S+ ){0,3}?(?:ways"
         r"|how|methods) to (?:die|do it|end it|end things|end my life|kill myself|overdose)\b"),
    ]},
    # a wish to be dead or not to wake up, without a plan (passive ideation)
    "death_wish": {CRISIS: [
        r"\bwish(?:ed|ing)? (?:that )?(?:i|id|i'd) (?:was|were|could be|would be|'d be|had been) dead\b",
        (r"\bwish(?:ed|ing)? (?:that )?(?:i|id|i'd) (?:could |would )?(?:die|died|never existed"
         r"|had never been born|was never born|wasn't born|didn't exist|never wake up|wouldn't wake up)"),
        (r"\b(?:hope|hoping|pray|praying|want) (?:that )?i (?:just )?(?:don't|do not|dont|never|won't|wont|will not)"
         r" (?:\w+ )?wake up"),
        r"\b(?:never|not|don't|dont) (?:to )?wake up (?:again|tomorrow|ever)\b",
        r"\b(?:will|would|i'll|ill|to|and) never wake up\b",
        r"\bbetter off dead\b", r"\b(?:i'd|id|i would) rather (?:be dead|die|not exist|not be alive|not live)\b{!than}",
        r"\b(?:ready|deserve|deserves) to die\b", r"\b{CANT} wait to die\b",
        r"\b(?:please|pls|plz|someone|somebody|anyone) (?:please |pls |plz |just )?(?:kill|shoot|end) me\b",
        r"\bjust (?:kill|end) me (?:now|already|please|pls)\b",
        r"\b(?:somebody|someone|anyone|please|pls|plz) (?:just )?end {POSS} life\b",
        r"\bwhy (?:am|are) (?:i|we) (?:still |even )?(?:alive|living|breathing|existing)\b",
        r"\bwhy am i still here\b", r"\bwhy (?:was|were) (?:i|we) (?:even )?born\b",
        (r"\bwhy (?:do|should|would) i (?:even |still )?(?:keep )?(?:live|living|bother living|exist|go on"
         r"|stay alive|keep going|keep living)\b"),
        (r"\b(?:no|any|lost (?:my|the)|without a|can'?t find a|cant find a|don'?t have a|dont have a|don'?t see a)"
         r" reasons? (?:to|for) (?:live|living|be alive|stay alive|go on|keep going|exist)\b"),
        r"\bnothing (?:left )?to live for\b",
        (r"\b(?:my|this) life (?:will|would|could|to|should|might|can|must) (?:just |finally |soon )?"
         r"(?:end|be over)\b"),
        r"\b{NOT}\b(?: \S+){0,5}? worth (?:living|being alive|it anymore|staying alive|going on)\b",
        r"\b(?:tired|sick|exhausted|done) (?:of|with) (?:living|being alive|existing|life|breathing|this life)\b",
        r"\b(?:delete|erase) (?:my (?:existence|self|life)|me from existence)\b",
        (r"\b(?:stop|stopped) (?:existing|living|breathing)\b{!on for in through with under off at as my a the"
         r" paycheck together there here heavily}"),
        r"\b(?:cease|ceased) to exist\b", r"\bnot (?:be|being) alive (?:anymore|any more)\b",
        (r"\b(?:don't|dont|do not|no longer|never) (?:want|wanna|wish) (?:to )?(?:live|be alive|exist"
         r"|be here anymore|go on|be around anymore|wake up)\b{!in with at on near there here a the my alone far"
         r" close together somewhere anywhere abroad without early so to for}"),
        r"\b(?:don't|dont|do not) care (?:if|whether) i (?:live|die|wake up|survive|make it)\b",
        r"\bwouldn't mind (?:dying|being dead|death|not waking up|if i died|if i didn't wake up)\b",
        (r"\b(?:death|dying) (?:would be|is|sounds|seems) (?:a |the )?(?:relief|release|better|easier"
         r"|the only|peaceful|welcome)\b"),
        r"\b(?:pray|praying|prayed|beg|begging|long|longing) (?:for|to) (?:death|die)\b",
        # passive and indirect: something else should end it
        (r"\b(?:hope|hoping|hoped|wish|wishing|wished|pray|praying|prayed)(?: \S+){0,3}? (?:that )?(?:a |the |some )?"
         r"(?:car|bus|truck|lorry|train|plane|god|someone|something|cancer|it)\b(?: \S+){0,2}? (?:would |will |'d |just )?"
         r"(?:hit|hits|take|takes|took|crash|crashes|go down|goes down|kill|kills|run me over|finish me)\b"
         r"{!the_ball a_home_run it_off}"),
        (r"\b(?:wouldn'?t|would not|won'?t) (?:even )?(?:mind|be mad|care) if (?:i|a \w+|something|someone)"
         r" (?:got |get )?(?:hit|died|killed|ran me over|took me out|crashed)"),
        r"\bif a (?:bus|car|truck|lorry|train) (?:took|takes|hit|hits) me(?: out)?\b(?: \S+){0,3}? (?:wouldn'?t|would not)",
        r"\b(?:let me|want to|wanna|need to|i'?d like to) (?:just )?(?:sleep|rest) forever\b",
        r"\b(?:sleep|asleep) and (?:never|not) (?:come back|wake up|return)\b",
        r"\bif i (?:just )?(?:didn'?t|did not|never) wake up\b",
        r"\b(?:hope|hoping|wish|pray|praying) (?:that )?i (?:just )?(?:die|get hit|get killed|don'?t make it)\b",
        r"\b(?:simply |just )?not exist (?:anymore|any more|permanently|forever)\b",
        r"\b(?:want|wish|need)(?: \S+){0,3}? to (?:delete|erase|uninstall) me\b(?! from)",
        r"\bheart (?:would |to )?(?:just )?stop(?:ped|s)? in my sleep\b", r"\btakes? me in my sleep\b",
    ]},
    # how: overdose, hanging, jumping, weapons, cutting wrists, lethal-means questions
    "suicide_method": {CRISIS: [
        r"\boverdos(?:e|es|ed|ing)\b", r"\bod(?:'d|ed|ing|d) on\b", r"\blethal dose\b",
        (r"\b(?:a (?:whole )?bottle of|handful of|bunch of|too many|(?:whole|entire) (?:bottle|box|pack|packet) of"
         r"|stockpil\w*|hoard\w*|stash of|save up|saving up|saved up) (?:my |the |of )?{PILLS}"),
        (r"\b(?:swallow|swallowed|swallowing|take|took|taking|down|downed) (?:all|every|a bottle|a handful)"
         r"(?: of)? (?:my |the )?{PILLS}"),
        r"\bnoose\b", r"\b(?:hang|hangs|hanged|hung|hanging) {SELF}",
        r"\b(?:rope|belt|cord) (?:around|round|to) {POSS} neck\b",
        (r"\b(?:jump|jumps|jumped|jumping|leap|leaping|throw myself|throwing myself) (?:off|from|of)"
         r" (?:a |the |this |that |my |our )?(?:\w+ )?(?:bridge|building|roof|rooftop|cliff|balcony|ledge|window"
         r"|overpass|tower|floor|parking garage|skyscraper)"),
        (r"\b{JUMP} (?:(?:in front of|under) (?:a |the |an |oncoming )?(?:train|bus|truck|car|traffic|subway|metro)"
         r"|(?:into|onto) (?:oncoming )?(?:traffic|the tracks|the railway|the road))"),
        (r"\b(?:drive|drove|driving|crash|crashing|crashed) (?:my car |the car )?(?:off a (?:bridge|cliff)"
         r"|into (?:a tree|a wall|oncoming traffic|the sea|a lake|the river))"),
        (r"\b(?:(?:turn|turning|steer|steering) (?:the wheel|the car|my car)|swerve|swerving) (?:into|towards?) (?:the |a )?"
         r"(?:barrier|oncoming|tree|wall|lorry|truck|traffic|river)\b"),
        (r"\b(?:gun|pistol|barrel|bullet|revolver|shotgun|rifle) (?:to|in|into|through) {POSS}"
         r" (?:head|mouth|brain|temple|skull|chest)\b"),
        (r"\b(?:shoot|shoots|shot|shooting|stab|stabs|stabbed|stabbing|drown|drowns|drowned|drowning|poison"
         r"|poisoned|poisoning|electrocute|suffocate|suffocating|strangle|strangling) {SELF}"),
        r"\bblow {POSS} (?:brains|head) (?:out|off)\b", r"\bput a bullet\b",
        r"\b{CUT} (?:open |into |through |up )?(?:{POSS} |the )?(?:\w+ )?wrists?\b",
        (r"\b(?:razor|blade|knife|box ?cutter)s? (?:\S+ ){0,3}(?:on|to|across|into|against) {POSS} (?:\w+ )?"
         r"(?:wrists?|throat|veins?)"),
        (r"\b(?:painless(?:est)?|quick(?:est)?|easi(?:est|er)|best|fastest|surest) (?:way|ways|method|methods)"
         r" (?:to|of) (?:die|dying|end it|kill|suicide|end my life)"),
        (r"\bhow (?:many|much) (?:\S+ ){0,4}(?:to die|would kill me|to kill myself|to overdose|to od|is lethal"
         r"|is fatal)\b"),
        r"\b(?:exit|suicide|helium) bag\b",
    ]},
    # hurting oneself without intent to die: cutting, burning, relapse
    "self_harm": {CRISIS: [
        r"\bself[- ]?(?:harm\w*|injur\w*|mutilat\w*)",
        (r"\b(?:cut|cuts|cutting|burn|burns|burned|burnt|burning|hurt|hurts|hurting|harm|harms|harmed|harming"
         r"|scratch|scratched|scratching|carve|carved|carving|starve|starved|starving|mutilate|mutilating|hit|hitting"
         r"|punch|punched|punching|bruise|bruised|bruising|choke|choking) {SELF}"
         r"{!at in on playing during while when lifting running skiing skating falling by_accident accidentally}"),
        r"\b{CUT} (?:into |up |open )?(?:{POSS} |the )?(?:\w+ )?{BODY}\b",
        r"\b(?:razor|razors|blade|blades|box ?cutter)\b(?: \S+){0,4} (?:{POSS}|the) (?:\w+ )?{BODY}\b",
        (r"\b(?:started|start|starting|stopped|stop|quit|quitting|been|urge to|urges to|want to|wanna|need to"
         r"|relapsed|relapse|relapsing|back to) (?:on |into |to )?cutting(?=$|[^\w\s]| (?:again|myself|my self|for"
         r"|since|every|when|because|and|but|to|so|as|until|or|lately|recently|anymore|any more|my {BODY})\b)"),
        r"\bcutting again\b", r"\b(?:urge|urges|itch) to (?:cut|self[- ]?harm|burn|hurt myself)\b{!hair my_hair}",
        r"\b(?:fresh|deep) cuts\b", r"\bhid(?:e|ing)? (?:my|the) (?:cuts|scars)\b",
        r"\b(?:cuts|scars) (?:on|all over|across) (?:{POSS}|the) {BODY}\b",
        r"\b(?:days|weeks|months|years) (?:clean )?(?:from|of|without) (?:cutting|self[- ]?harm\w*)\b",
        r"\b(?:clean|free) (?:from|of) (?:cutting|self[- ]?harm\w*)\b",
        # burning, scratching, hitting; wanting the pain
        (r"\b(?:held|hold|holding|pressed|press|pressing|put|putting) (?:\S+ ){0,6}?(?:lighter|cigarette|cig|iron|flame"
         r"|match|spoon|knife|blade|hot \w+)\b(?: \S+){0,6}? (?:against|onto|on|to|into) (?:my|his|her) (?:\w+ )?{BODY}"),
        (r"\b(?:scratch|scratched|scratching|pick|picked|picking|dig|digging|dug|claw|clawed|clawing"
         r"|hit|hitting|punch|punched|punching|bang|banged|banging|slam|slammed) (?:\S+ ){0,5}?(?:until|till|til|untill)"
         r" (?:it|they|i|my \w+|there (?:are|is|were|was)) (?:\w+ )?(?:bleed|bled|bleeds|bleeding|break|broke|split|bruise"
         r"|bruised|felt|feel|marks|blood|raw)"),
        r"\b(?:dig|digs|digging|dug|press|pressing) (?:my )?(?:finger)?nails into (?:my )?(?:\w+ )?{BODY}",
        (r"\b(?:hit|hitting|punch|punching|bang|banging|slam|slamming) my (?:head|fists?) (?:against|into|on) (?:the )?"
         r"(?:wall|floor|door)\b(?: \S+){0,3}? (?:over and over|again and again|until|till|repeatedly)"),
        r"\bi (?:need|want|deserve|crave) (?:it|this) to hurt\b", r"\bi deserve (?:the|this|all the) pain\b{!of}",
        r"\b(?:craving|crave|crave for|miss|missing) the (?:sting|blood|blade|burn)\b",
        r"\b(?:want|need|wanna) to (?:feel the (?:blade|sting|burn)|bleed)\b", r"\bmake (?:myself|me) bleed\b",
        r"\b(?:want|need|wanna|crave|deserve) to (?:feel|be in|see) (?:physical |real )?(?:pain|blood)\b{!relief}",
        # "I haven't cut in 3 months": recovery, negated by text.py (a concern)
        (r"\b(?:cut|cutting|self[- ]?harmed) (?:in|for|since) (?:\d+|a|an|one|two|three|several|many|over|almost"
         r"|nearly) (?:\w+ )?(?:days?|weeks?|months?|years?)\b"),
    ]},
    # saying goodbye, final messages, putting affairs in order
    "farewell": {CRISIS: [
        r"\bthis is (?:my )?(?:final |last )?goodbye\b", r"\bgoodbye,? (?:world|cruel world|forever)\b",
        r"\b(?:my|a) final (?:goodbye|goodbyes|farewell|words|message|post|tweet|note|letter)\b",
        r"\bmy last words\b", r"\b(?:goodbye|farewell|suicide) (?:note|notes|letter|letters)\b",
        (r"\b(?:won't|will not|wont|not gonna|not going to) be (?:here|around|alive) (?:much longer|anymore"
         r"|any more|for long)\b"),
        r"\bby the time (?:you|anyone|someone|somebody|people) (?:read|reads|see|sees|find|finds) this\b",
        r"\bgiv(?:e|es|ing|en) away (?:all )?(?:of )?(?:my|all my) (?:stuff|things|belongings|possessions)\b",
        r"\b(?:forgive|don't hate|dont hate) me for what i'?m (?:about|going) to do\b",
        r"\b(?:my|the) last (?:day|night|week) (?:on earth|alive|of my life|living)\b",
    ]},
    # being a burden; others better off without me (perceived burdensomeness, Joiner)
    "perceived_burdensomeness": {CONCERN: [
        (r"\b(?:i'?m|i am|im|being|feel like|feel like i'?m|i feel like) (?:a |such a |just a |only a"
         r" |nothing but a |the )?(?:\w+ )?burden\b"),
        (r"\b(?:a|such a|nothing but a|just a|only a) (?:\w+ )?burden (?:to|on|for) (?:everyone|everybody"
         r"|my \w+|others|people|them|you|all|the world|society)\b"),
        r"\bburden(?:ing|some)? (?:to |on )?(?:everyone|everybody|my family|others|my friends|my parents)\b",
        r"\b(?:better off|happier|easier|better|a better place) without (?:me|him|her|them)\b",
        r"\b(?:better off|happier|easier|better) (?:when|once|after|if) i'?m (?:gone|not here|not around)\b",
        (r"\b(?:no one|nobody|noone|no body) (?:would|will|wouldn't|will ever|would ever|would even|will even)"
         r" (?:miss|care about|notice|care if)\b"),
        r"\b(?:wouldn'?t|won'?t|wont|would not|will not) (?:even )?(?:miss|notice) (?:me|if i)\b",
        r"\b(?:waste of (?:space|oxygen|air|life|a life|skin)|i ruin everything|i ruin everyone'?s life)\b",
    ]},
    # unbearable pain, entrapment, hopelessness about living
    "hopelessness": {CONCERN: [
        (r"\b{CANT} (?:take|handle|bear|stand|do|cope with|deal with|live with|live like|survive)"
         r"(?: it| this| this life| life| this pain| the pain| living| like this)?(?: \S+)? (?:any ?more"
         r"|much longer|any longer)\b"),
        (r"\b{CANT} (?:go on|keep going|carry on|keep living|keep doing this|continue living|do life|be alive"
         r"|live anymore|live any more)\b{!to back out with without at for in}"),
        (r"\b(?:no|there'?s no|there is no|don'?t see a|dont see a|can'?t see a|can'?t find a|the only|only one)"
         r" way out\b"),
        r"\bfeel(?:s|ing)? (?:so |completely |totally )?trapped\b",
        r"\b(?:give|giving|gave|given) up on (?:life|living|everything|myself|me|the world|trying)\b",
        (r"\b(?:what'?s|whats|there'?s no|there is no|no|see no|don'?t see (?:the|any)|dont see (?:the|any))"
         r" (?:\w+ )?point (?:in|of|to) (?:living|life|going on|being alive|existing|anything|trying|carrying on"
         r"|me)\b"),
        (r"\b(?:life|living|my life|existence|everything|being alive) (?:is|feels|seems) (?:so |just |completely"
         r" |utterly )?(?:pointless|meaningless|unbearable|hopeless|worthless)\b"),
        (r"\b(?:want|need|make) (?:it|the pain|everything|this|it all|all of it) (?:all )?(?:to )?(?:end|stop"
         r"|be over)(?=$|[^\w\s]| (?:already|now|please|pls|forever|for good|so bad|so badly|i|and|but)\b)"),
        r"\blet it (?:all )?be over\b", r"\btoo much pain\b", r"\b(?:so |too )?much pain i can'?t\b",
        r"\b(?:done|finished|tired of) fighting\b(?! (?:with|for|over|about))", r"\bi (?:just )?want out\b(?! of)",
        (r"\b(?:want|wanna|need|wish i could) (?:to )?(?:disappear|vanish|fade away|be gone) (?:forever|for good"
         r"|completely|and never)\b"),
        (r"\bi (?:just )?(?:want|wanna|need) (?:to )?(?:disappear|vanish|fade away|be gone)\b{!from_social_media"
         r" from_twitter from_instagram from_facebook from_the_internet for_a_while for_a_bit for_a_few"
         r" for_the_weekend for_a_week}"),
    ]},
    # harming others (kept from the first version of the screen; a warning sign, not self-directed)
    "violent_thoughts": {CONCERN: [
        (r"\b(?:kill|hurt|shoot|stab|strangle|murder) (?:him|her|them|someone|somebody|everyone|everybody|people"
         r"|my (?:boss|teacher|parents|mom|dad|family|classmates|coworkers))\b{!with_kindness}"),
        r"\b(?:shoot|shooting) up (?:the|my|a) (?:school|office|work|class|mall|church)\b",
    ]},
}


def _expand(pattern: str) -> str:
    """{NAME} → its fragment; {!a b_c} → not followed by the word 'a' or the words 'b c'."""
    pattern = re.sub(r"\{!([^}]*)\}", lambda m: r"(?! (?:" + "|".join(
        w.replace("_", " ") for w in m.group(1).split()) + r")\b)", pattern)
    return re.sub(r"\{([A-Z]+)\}", lambda m: _F[m.group(1)], pattern)


def _compile(patterns: list[str]) -> re.Pattern:
    return re.compile("|".join(f"(?:{_expand(p)})" for p in patterns))


def _merged() -> dict[str, dict[str, list[str]]]:
    """The statement categories (above) and the behaviour categories (behaviour.py), one dict."""
    out = {cat: {level: list(pats) for level, pats in by_level.items()} for cat, by_level in _LEXICON.items()}
    for cat, by_level in BEHAVIOUR.items():
        for level, pats in by_level.items():
            out.setdefault(cat, {}).setdefault(level, []).extend(pats)
    return out


_ALL = _merged()
_ORDER = (CRISIS, CONCERN, MENTION)
CATEGORIES: tuple[str, ...] = tuple(_ALL)
# the highest level a category's phrases reach on their own (a MENTION-only category would have none)
LEVELS: dict[str, str] = {cat: next(lv for lv in _ORDER if lv in by_level) for cat, by_level in _ALL.items()}
# (category, strength of its phrases, one compiled alternation), compiled once at import
PATTERNS: list[tuple[str, str, re.Pattern]] = [
    (cat, level, _compile(by_level[level])) for cat, by_level in _ALL.items() for level in _ORDER if level in by_level]
CUE_PATTERNS: dict[str, re.Pattern] = {group: _compile(pats) for group, pats in CUES.items()}
RETURN_PATTERN = re.compile(RETURN)
