"""The behaviour side of the crisis lexicon: what people write when they are past thinking about it.

The Columbia Suicide Severity Rating Scale (C-SSRS) grades ideation (wish to be dead, thoughts, method,
intent, plan) and behaviour (preparatory acts, interrupted, aborted and actual attempts); its screener
triages intent, a plan and any preparatory behaviour as high risk. Posts rarely name the act: they say
that the note is written, the cat has a new home, the pills are saved up, the date is picked, or that
the pills were taken an hour ago. docs/crisis-taxonomy.md maps each category here to its source and
level; lexicon.py adds these to the statement categories and compiles them.

Three strengths of phrase (the keys of each category):
- CRISIS: a crisis on its own ("I've taken all my pills", "wrote the note", "worth more to them dead");
- CONCERN: a warning sign on its own ("putting my affairs in order", "I've decided.");
- MENTION: no signal on its own, because ordinary posts say it all the time ("gave my guitar to my
  nephew", "there's a rope in the garage", "took them all").
text.py raises a CONCERN or MENTION phrase of these categories to CRISIS when, within RAISE_WINDOW
characters, the poster also writes one of the category's CUES (rumination "I keep thinking about it",
security "just in case", finality "won't be needing them", timing, calm, secrecy, ...) or any other
first-person signal of another category (the issue's example: farewell letters and "everyone will be
better off when I'm gone"). Farewell and intent phrases also raise each other (PAIRED), unless the post
expects to come back (RETURN: "see you in May"). A MENTION that is not raised is dropped.
The patterns are written for the kind of language, with tests/mental_r1/crisis_probe.jsonl (dev part)
and tests/mental_r1/test_screen_text.py; fragments in {BRACES} are lexicon._F's.
"""

from __future__ import annotations

CRISIS, CONCERN, MENTION = "crisis", "concern", "mention"

# numbers of tablets no one takes as a dose
_MANY = (r"(?:[1-9]\d{1,2}|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
         r"|a hundred|hundreds|dozens)")
_INGESTED = r"(?:took|taken|swallowed|downed|necked|popped|chugged|drank|drunk)"
_HEIGHT = r"(?:roof|rooftop|bridge|ledge|edge|cliff|balcony|overpass|railing|parapet|tracks|top floor)"

BEHAVIOUR: dict[str, dict[str, list[str]]] = {
    # an act under way or just done: the emergency number comes first (C-SSRS actual/interrupted attempt)
    "attempt_in_progress": {
        CRISIS: [
            (r"\b{INGESTED} (?:about |like |around |maybe |over |nearly |almost |at least )?{MANY} (?:of )?"
             r"(?:my |the |her |his |those |these )?(?:\w+ )?{PILLS}"),
            (r"\b(?:i'?ve|i have|i just|just|already) (?:\w+ )?(?:taken|took|swallowed|downed|necked) (?:all|every"
             r"|the (?:whole|entire|rest)|a (?:whole )?(?:bottle|packet|box|handful)|everything)\b"),
            (r"\b(?:swallowed|downed|necked) (?:all of |the |a )?(?:whole |entire |full )?(?:bottle|packet|box|strip|tub)\b"
             r"(?! of (?!(?:my |the |her |his )?(?:\w+ )?{PILLS}))"),
            (r"\b(?:taken|took|swallowed|downed) (?:everything|all) (?:i (?:could )?(?:find|found|had)|in (?:the|my|our)"
             r" (?:medicine|bathroom|pill) (?:cabinet|cupboard|drawer|box))"),
            (r"\b(?:drank|drunk|swallowed|downed|taken|took|had) (?:\S+ ){0,4}?(?:bleach|antifreeze|weed ?killer"
             r"|rat poison|drain cleaner|poison)\b"),
            r"\b(?:i'?ve|i have|i just|just|already) (?:\w+ )?(?:overdosed|od'd|oded)\b",
            r"\bthe (?:rope|noose) is (?:up|tied|ready|set|around)\b",
            r"\b(?:climbed|climbing|i'?m|standing|sitting) (?:over|on|past) the (?:railing|barrier|parapet|ledge)\b",
            (r"\b(?:car|engine|motor) (?:is |still )?running in (?:the|my|our|a) (?:closed |shut |locked )?garage"
             r"|\bgarage with the (?:engine|motor|car) (?:running|on)\b"),
            r"\bcut (?:\S+ ){0,3}?(?:too deep|deeper than i (?:meant|wanted|planned))",
        ],
        MENTION: [
            r"\b(?:took|taken|swallowed|downed) them all\b",
            r"\b{INGESTED} (?:too many|a lot of|loads of|lots of|a bunch of|a load of) (?:my |the )?(?:\w+ )?{PILLS}",
            r"\b(?:sat|sitting|lay|lying|laid|standing|stood) (?:down )?on the (?:train |railway )?tracks\b",
            (r"\b(?:took|taken|swallowed|downed) all (?:of )?(?:my|the) (?:\w+ )?{PILLS}"),
            r"\b(?:i'?m|i am|im|standing|sitting) (?:\w+ )?(?:on|at|up on) (?:the |a |my |this )(?:\w+ )?{HEIGHT}\b",
            r"\b(?:won'?t|will not|wont|can'?t|cannot) stop (?:the )?bleeding\b",
        ],
    },
    # lethal means at hand, stated flatly (C-SSRS preparatory behaviour: collecting pills, getting a rope)
    "means_access": {
        CRISIS: [
            (r"\benough (?:of )?(?:my |the |these |those )?(?:\w+ )?(?:{PILLS}|rope|insulin)\b(?: \S+){0,4}? to (?:do it"
             r"|end it|end things|kill (?:me|myself)|not wake up|never wake up|die|overdose|finish (?:it|the job)|make sure)\b"),
            (r"\b{PILLS} (?:\S+ ){0,3}?(?:saved|saving|stashed|hidden|stockpiled|hoarded|put aside|put away"
             r"|squirrell?ed away|lined up)\b"),
            r"\b(?:filled|collected|picked up) (?:\S+ ){0,3}?prescriptions? (?:\S+ ){0,8}?without taking\b",
            r"\b(?:collecting|collected|saving|stashing|hiding|hoarding) (?:up )?(?:all )?(?:my |the |of )?(?:\w+ )?{PILLS}",
            r"\bhow many (?:\S+ ){0,3}?(?:it would take|would it take|does it take|it takes)\b",
            (r"\bi know (?:exactly )?(?:which|what|where the) (?:bridge|building|spot|place|cliff|tree|train"
             r"|pills|method|car park)\b"),
            r"\bthe fall would (?:be enough|kill|do it)\b",
        ],
        MENTION: [
            r"\b(?:a|the|my|some|this) (?:\w+ )?(?:rope|noose|ligature)\b",
            r"\b(?:his|her|my|our|dad'?s|father'?s|the|a) (?:\w+ )?(?:rifle|gun|pistol|handgun|shotgun|revolver)\b",
            r"\b(?:charcoal|a hose|the hose|helium)\b",
            r"\b(?:razor|razor blade|blade|blades)\b",
            (r"\b(?:\d+|{TENS}|a (?:bottle|box|stash|load|pile|drawer)) (?:of )?(?:my )?(?:\w+ )?{PILLS}\b"
             r"|\b{PILLS} in (?:my|the) (?:drawer|cupboard|wardrobe|bag|closet)\b"),
            r"\bgarage\b(?: \S+){0,8}? (?:car|engine|exhaust)\b|\b(?:car|engine|exhaust)\b(?: \S+){0,8}? garage\b",
            r"\b(?:edge of the platform|platform edge|yellow line)\b",
            r"\b(?:the|a|this|that) (?:\w+ )?(?:bridge|overpass|cliff|multi-storey|rooftop)\b",
        ],
    },
    # putting affairs in order, a note, things given away (C-SSRS preparatory behaviour)
    "preparations": {
        CRISIS: [
            r"\b(?:wrote|written|writing|finished|left) (?:the|my) (?:suicide )?note\b(?! (?:to|for|about|on|from|in|of)\b)",
            r"\bgiv(?:e|es|ing|en)? (?:all |most |some )?(?:of )?my (?:stuff|things|belongings|possessions|valuables) away\b",
            r"\bgave (?:away )?(?:all |most )(?:of )?my (?:stuff|things|belongings|possessions|valuables)\b",
        ],
        CONCERN: [
            r"\b(?:put|putting|puts|get|getting|got|sorting) (?:all )?my affairs in order\b",
            r"\btying up (?:all )?(?:the |my |some )?loose ends\b",
            r"\bwho (?:should|will|would) (?:get|have|inherit) (?:what|my)\b", r"\bwho gets my\b",
        ],
        MENTION: [
            (r"\b(?:gave|give|giving|given|sold|selling) (?:away )?(?:all |most |some |a lot )?(?:of )?my (?:\w+ ){1,2}?"
             r"(?:to|away)\b"),
            r"\b(?:found|finding|find) (?:a )?(?:new )?(?:home|homes|owner|owners) for (?:my|our) \w+",
            r"\brehom\w* (?:my|our)\b",
            r"\bpaid (?:off|back) (?:everyone|everybody|all|the last|my|every)\b",
            r"\b(?:settled|cleared|sorted|sorting|settling) (?:out )?(?:all )?(?:of )?my (?:debts?|bills|finances|accounts)\b",
            (r"\bdelet(?:ed|ing) (?:all )?(?:of )?my (?:old )?(?:\w+ )?(?:socials|accounts?|profiles?|instagram|facebook"
             r"|tiktok|twitter|snapchat|posts|photos)\b"),
            r"\bcancel+(?:ed|ing) (?:\w+ )?(?:my )?(?:phone|gym|subscriptions?|contracts?|membership|lease)\b",
            r"\b(?:wrote|written|writing|left|leaving) (?:\w+ ){0,2}?(?:letters?|notes?|cards?) (?:to|for) (?:my|each|everyone|all)\b",
            r"\b(?:sent|gave|written down|wrote down|left) (?:\w+ ){0,3}?(?:my )?passwords\b",
            r"\b(?:updated|wrote|made|finished|changed) my will\b", r"\b(?:updated|changed|sorted) (?:the |my )?beneficiar",
            r"\b(?:returning|returned|gave back|giving back) (?:\w+ )?(?:everything|all the things|the things|stuff) i (?:borrowed|owe)",
            r"\b(?:cleaned|cleared) out (?:my|the) (?:whole )?(?:room|flat|apartment|desk|locker)\b",
        ],
    },
    # goodbyes to life (the lexicon's first farewell phrases are in lexicon.py)
    "farewell": {
        CRISIS: [
            r"\bif (?:this|it) is (?:the|my) last (?:thing|post|message|time)\b", r"\bgood ?night forever\b",
            (r"\b(?:you|u|you'?ll|you will) (?:won'?t|will not|wont|never)? ?(?:ever )?hear from me (?:again|anymore"
             r"|any more)\b{!until till before for after this}"),
        ],
        CONCERN: [
            (r"\b(?:this|it) (?:will be|is|'s|'ll be) (?:my )?(?:last|final) (?:post|message|tweet|video|entry)\b"
             r"(?! (?:for|of|on|before|until|till|in)\b)"),
            r"\bthank(?:s| you)(?: \w+){0,2}? for everything\b",
            r"\b(?:thx|thanks|thank you)(?: all| everyone| guys)? for (?:the memories|putting up with me)\b",
            r"\bgoodbye[.!]*$",
            (r"\b(?:you|this (?:sub|community|server|place|group)) (?:helped|saved|meant)(?: me| so much)? more than (?:you"
             r"|it) (?:know|knows|realise|realize|think)\b"),
            r"\bif anyone (?:here |still )?remembers me\b", r"\b(?:everyone|all of you|those) who (?:tried|tries) to help\b",
            r"\btake care of (?:each other|yourselves)\b", r"\blook after each other\b",
            r"\b(?:don'?t|do not|dont) blame (?:yourself|yourselves|urself|anyone)\b",
            r"\b(?:none of (?:this|it) (?:is|was)|it'?s not|it is not|this isn'?t|this is not) (?:your|anyone'?s) fault\b",
            r"\b(?:goodbye|bye|farewell) (?:everyone|everybody|all|guys|friends|world|forever|y'?all)\b",
            r"\b(?:say|saying|said) goodbye (?:properly|for (?:the last time|good)|one last time)\b",
            r"\b(?:wanted|want) to say goodbye\b",
            r"\bsee (?:you|u|ya) on the other side\b(?! of)",
            r"\bi'?m (?:so )?sorry (?:for everything|for all of (?:it|this))\b", r"\b(?:mum|mom|dad|mama),? i'?m sorry\b",
            r"\bsigning off (?:for good|forever|permanently)\b",
            r"\bwon'?t be (?:posting|here|online|around) (?:anymore|any more|after)\b",
            r"\b(?:it was|it'?s been) (?:nice|good|an honou?r) knowing (?:you|some of you|all of you|everyone)\b",
            r"\b(?:don'?t|dont|do not) be sad\b", r"\bsaying (?:my )?goodbyes\b",
            r"(?:^|[.!?,] |please )tell (?:my \w+|them|her|him|everyone) (?:that )?i love (?:her|him|them|you)\b",
            r"\bso long,? (?:everyone|everybody|all|world|friends)\b",
            r"\bsorry (?:that )?i (?:couldn'?t|wasn'?t) (?:be )?(?:stronger|better|enough)\b",
            r"\bi'?m (?:so )?sorry for (?:being (?:a|such a|like this)|what i'?m about to|everything i put)\b",
        ],
        MENTION: [  # every fan tweet and every request for advice says these
            r"\bi love (?:you|u) (?:all|guys|so much)\b", r"\b(?:take care of|look after) my\b",
            (r"\b(?:thx|thanks|thank you)(?: all| everyone| guys)? for (?:all )?(?:the|your) (?:kindness|help|support|love"
             r"|laughs)\b"),
        ],
    },
    # intent and a plan: the decision, the date, the how (C-SSRS ideation 4-5)
    "intent_plan": {
        CRISIS: [
            (r"\bi know (?:exactly )?(?:(?:how|when|where) and (?:how|when|where) (?:i'?m (?:going|gonna) to|i'?ll|i will"
             r"|to)|(?:how|when|where) (?:i'?m (?:going|gonna) to|i'?ll|i will)) do it\b"),
        ],
        CONCERN: [
            r"\bi'?ve (?:finally )?(?:decided|made (?:up )?my (?:mind|decision)|made the decision)(?=\s*[.!;,]|$)",
            r"\b(?:picked|set|chosen|chose) (?:a|the|my) (?:date|day|time|night)\b(?! (?:for|of|to)\b)",
            r"\bmy mind is made up\b", r"\b(?:nothing|no one|nobody) (?:will|can|is going to|could) stop me\b",
            r"\b(?:i have|i'?ve got|i'?ve made|i made) a (?:\w+ )?plan(?=\s*[.!]|$)",
            (r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|tonight)(?: night)?(?:'s| is"
             r"| will be) (?:the day|the night|it)(?=\s*[.!,;]|$)"),
            r"\bthis (?:weekend|week|month|friday|saturday|sunday) is it\b(?=\s*[.!,;]| for me|$)",
            r"\b(?:go|going|gonna|goin) through with it\b",
            r"\bthe plan is (?:set|made|ready|final|done)\b", r"\b(?:got|have) it all (?:figured|worked|planned) out\b",
            r"\b(?:worked|figured) out (?:all )?the details\b", r"\b(?:written|wrote) (?:down )?the plan\b",
            r"\b(?:talk|talking) me out of (?:it|this)\b",
            r"\bwon'?t be (?:here|around|alive) (?:for|by|at|on) (?:my|the|next|christmas)\b",
            r"\b(?:not|no longer) (?:scared|afraid|frightened) (?:of|to) (?:do|doing) it\b",
        ],
        MENTION: [r"\b(?:i'?m|im|i am) (?:finally )?(?:going|gonna) (?:to )?do it\b"],
    },
    # death framed as a gift to others (perceived burdensomeness that names the poster's death)
    "death_as_gift": {
        CRISIS: [
            (r"\b(?:better off|happier|freer|free|relieved|easier)\b(?: \S+){0,3}? (?:if|when|once|after) i (?:die|died"
             r"|was dead|were dead|am dead|'m dead|killed myself|was gone for good|were gone for good|wasn'?t alive"
             r"|weren'?t alive|didn'?t exist|was not alive|were not alive)\b"),
            (r"\bmy (?:death|suicide|dying) (?:would|will|could) (?:\w+ ){0,2}?(?:be|make|give|free|help|fix|solve|save"
             r"|relieve|set)\b"),
            r"\bworth more (?:to (?:them|my \w+|everyone) )?dead\b",
            r"\bbetter off with me (?:dead|gone for good|gone forever)\b",
            (r"\binsurance(?: money| payout| policy)? (?:would|will|could) (?:\w+ )?(?:pay|fix|cover|give|help|set|take care"
             r"|sort|clear|solve)(?![^.!?]{0,80}\bif anything\b)"),  # not the adviser's "if anything happened"
            r"\b(?:would|will|'d|could) (?:get|have|collect|receive) (?:my|the) (?:life )?insurance\b",
            (r"\bif i (?:was|were|wasn'?t|weren'?t|am not|'m not) (?:dead|alive|gone for good|gone forever|around"
             r" anymore)\b(?: \S+){0,6}? (?:could|would|'d|can)\b"),
            (r"\b(?:would|could|'d) (?:\S+ ){0,6}?if i (?:was|were) (?:dead|gone for good|gone forever|not alive"
             r"|not around anymore)\b"),
            (r"\bstop(?:ped)? being (?:her|his|their|everyone'?s|my \w+'?s|a) (?:problem|burden)\b(?: \S+)?,?"
             r" (?:permanently|for good|forever)\b"),
        ],
        MENTION: [
            (r"\b(?:free of me|free from me|free without me|a relief for|a gift to|the best thing i (?:could|can|ever)"
             r"|save (?:so much |a lot of )?money|could (?:finally )?(?:rest|live (?:her|his|their) own life|be happy)"
             r"|doing (?:them|everyone|my \w+) a favou?r)\b"),
        ],
    },
}

# phrases that are no signal alone but make a nearby CONCERN or MENTION phrase a crisis; group → patterns
CUES: dict[str, list[str]] = {
    "rumination": [
        (r"\b(?:keep|kept|keeps|been|can'?t stop|cannot stop) (?:\w+ )?(?:thinking|think) (?:about|of|abt|bout) (?:it|that"
         r"|them|this|doing it)\b"),
        r"\ball i (?:can |keep |ever )?(?:think|thinking) about\b", r"\bmore than i (?:want|like|care) to admit\b",
        r"\bjust to look at (?:it|them)\b", r"\b(?:look|looking|stare|staring) at (?:it|them) (?:most|every|each|again)\b",
        r"\b(?:look|looking|stare|staring) (?:down )?at the (?:water|drop|tracks|river)\b",
        r"\bslow down every time\b", r"\blet (?:\w+ )?trains? (?:go|pass)\b",
    ],
    "security": [r"\bjust in case\b", r"\bso (?:that )?i know (?:it'?s|they'?re) there\b", r"\bcomforting\b"],
    "purpose": [
        r"\b(?:don'?t|do not|won'?t) need (?:it|them) for anything\b",
        r"\bwon'?t (?:be )?need(?:ing)? (?:it|them|these|those|any of (?:it|this|them))\b", r"\bno point keeping\b",
        r"\bwhat i'?(?:ll| will) use\b", r"\bwaiting for the right (?:night|day|time|moment)\b",
    ],
    "finality": [
        r"\bwon'?t be (?:here|around) (?:much longer|for long|anymore|after)\b", r"\bafter tonight\b",
        r"\bno more pain\b", r"\bi'?m done(?: now)?(?=\s*[.!]|$)", r"\bthis is it\b(?=\s*[.!,]|$)",
        r"\b(?:when|after|once) i'?m gone\b", r"\bwhere (?:they|it)(?:'ll| will) be found\b",
        r"\bif anything (?:ever )?happen(?:s|ed)\b", r"\b(?:leave|leaving) (?:a|any) mess\b",
        r"\bnobody (?:has|have|will have) to deal with\b", r"\bdone fighting\b", r"\bmade sure of (?:it|that)\b",
        r"\bwho (?:will|would|'ll) (?:actually )?be around\b", r"\bfor real this time\b",
        r"\b(?:too late|no going back)\b", r"\bone (?:last|final) time\b", r"\bwon'?t be (?:here|around) to see\b",
    ],
    "timing": [
        (r"\b(?:tonight|tomorrow night|this (?:weekend|friday|saturday|sunday)|next (?:weekend|week)|on the"
         r" \d{1,2}(?:st|nd|rd|th))\b"),
        r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday) (?:night|morning|evening)\b",
        r"\bafter (?:everyone|everybody|they|the kids)(?: \S+){0,3}? (?:is |are )?(?:asleep|gone|out|in bed)\b",
        r"\bit'?(?:ll| will) (?:be|happen) (?:on|after|before|the day|the night|next|this|when|once)\b",
        r"\b(?:wait|waiting) (?:until|till|til|for) i'?m (?:alone|on my own|by myself)\b",
    ],
    "calm": [  # the sudden calm after a decision, not calm in general
        (r"\b(?:strange|weird|odd|funny|strangely|weirdly|oddly|eerily|surprisingly) (?:how )?(?:calm|peaceful|at peace)"
         r"|\bat peace(?: with (?:it|this|that|my decision|the decision)| now)?\b|\bcalm(?:er)? than i'?ve (?:been|felt)\b"
         r"|\bfinally (?:feel )?(?:calm|at peace)\b"),
    ],
    "secrecy": [r"\b(?:nobody|no one|no-one) (?:needs|has|is going) to know\b", r"\bnot a cry for help\b",
                r"\b(?:said|told \w+|told them) (?:that )?i was (?:just )?(?:decluttering|clearing out|having a clear ?out)\b",
                r"\bso i don'?t lose my nerve\b"],
    "recency": [r"\b(?:an?|one|two|three|four|five|ten|few|couple of|\d+|{TENS}) (?:hours?|minutes?|mins?) ago\b",
                r"\bjust now\b"],
    "symptom": [r"\b(?:feel|feeling|getting|starting to feel|so) (?:really )?(?:strange|weird|sleepy|drowsy|dizzy|numb)\b",
                r"\b(?:step|stepping|move|get) (?:back|away|down) from the (?:edge|ledge)\b", r"\bwhile i still can\b",
                r"\bcan'?t make myself (?:step|go|move|get) (?:back|down|away)\b"],
    "death": [r"\b(?:dead|died|my death|gone for good|gone forever|permanently|not alive|if i (?:was|were) gone)\b"],
}
# which cue groups raise which category (any other first-person signal raises them all)
RAISED_BY: dict[str, tuple[str, ...]] = {
    "attempt_in_progress": ("recency", "symptom", "finality"),
    "means_access": ("rumination", "security", "purpose", "finality", "timing"),
    "preparations": ("calm", "secrecy", "purpose", "finality", "security"),
    "farewell": ("finality",),
    "intent_plan": ("timing", "calm", "secrecy", "finality"),
    "death_as_gift": ("death",),
}
PAIRED = ("farewell", "intent_plan")  # two different phrases of the category raise each other
# a farewell that expects to come back: its CONCERN phrases are no signal ("Goodbye everyone, see you next week!")
RETURN = (r"\bsee (?:you|u|ya|y'?all) (?!on the other side)(?:soon|later|tomorrow|next|in|on|at|around|then|there|monday"
          r"|tuesday|wednesday|thursday|friday|saturday|sunday)\b|\bfor a (?:while|bit|few (?:days|weeks))\b"
          r"|\bkeep in touch\b|\b(?:i'?ll|will) be back\b|\bback (?:on|next|in|tomorrow|soon)\b"
          r"|\btalk (?:to you )?(?:soon|tomorrow|later)\b")
FRAGMENTS = {"MANY": _MANY, "INGESTED": _INGESTED, "HEIGHT": _HEIGHT,
             "TENS": r"(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"}
