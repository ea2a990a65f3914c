"""The text source of the crisis screen: lexicon matches, with negation, whose risk and when, and the
combinations that make a crisis.

For every lexicon match (lexicon.py and behaviour.py, on every normalised form of the post, normalize.py)
three questions decide its level; negation and subject look at the clause the match sits in (clauses end
at . ! ? ; : , brackets and at but/and/so/because/though/or), the time at its sentence:

- Whose risk? The pronoun in the phrase decides ("kill myself" → self, "kill herself" → other). A phrase
  without one takes the nearest subject before it ("my friend said she wants to die" → she → other; "it
  makes me want to die" → me → self); with none, the poster (self). Someone telling the poster to do it
  ("told me to kill myself"), topical uses ("suicide rates") and sentences that frame the phrase as a
  story, a lyric or prevention work ("in the film she…", "warning signs include…") count as other.
- Negated? A negation among the three words before the phrase ("I would never kill myself", "I'm not
  suicidal", "I haven't cut in a year"), unless it is one of the forms that do not negate the phrase
  ("can't stop thinking about killing myself", "not even joking", "why don't I just…", "no one").
- Past? The sentence sets it years back ("years ago", "used to", "when I was 15", "at my lowest", "in
  2016"): a history, not a present risk. A sentence that vents about an irritant ("this traffic is making
  me want to…", "if I have to sit through one more meeting I'll…") counts as negated.

Level of a match: its phrase's strength (CRISIS, CONCERN or MENTION; behaviour.py), raised to CRISIS by a
cue or another first-person signal nearby (behaviour.py says which); a MENTION that is not raised is no
signal. Then someone else's risk is at most CONCERN (it includes bereavement and news, and a lexicon
cannot tell an emergency from a memory); a negation or the past lowers the level one step (a lowered
CONCERN is no signal). So "I would never kill myself" is a concern, not a crisis: people rarely deny what
is not on their mind, and a reviewer should see it; "my friend wants to die" is a concern, with resources
for the friend; "I wrote letters to my mum tonight" alone is no signal, and with "everyone will be better
off when I'm gone" beside it a crisis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mental_r1.screen.behaviour import PAIRED, RAISED_BY
from mental_r1.screen.lexicon import CONCERN, CRISIS, CUE_PATTERNS, MENTION, PATTERNS, RETURN_PATTERN
from mental_r1.screen.normalize import variants


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# clause boundaries: punctuation, conjunctions, and words that open a subordinate clause ("I never told
# anyone how suicidal I am": the negation belongs to "told")
_CLAUSE_END = re.compile(r"[.!?;:,()\[\]\n]| (?:but|and|so|because|cause|cuz|though|although|or|yet|then"
                         r"|how|what|when|where|which|who|whether|if) ")
_NEG = {"not", "no", "never", "nor", "neither", "cannot", "cant", "dont", "didnt", "doesnt", "wont", "wouldnt",
        "couldnt", "shouldnt", "isnt", "arent", "wasnt", "werent", "havent", "hasnt", "hadnt", "aint"}
# forms with a negation word that do not negate what follows them
_PSEUDO_NEG = re.compile(
    r"\b(?:not|n't) (?:even |really )?(?:kidding|joking|lying|sure|only|just|gonna lie|going to lie|to be)\b"
    r"|\b(?:can'?t|cannot|couldn'?t|won'?t|wont) (?:stop|help)\b|\b(?:don'?t|dont|do not) (?:know|care)\b"
    r"|\bwhy (?:not|don'?t|dont|doesn'?t|didn'?t|haven'?t|won'?t|can'?t|wouldn'?t)\b"
    r"|\bno (?:one|body|joke|cap|lie)\b|\bnot (?:a )?(?:day|night|moment|hour) goes by\b"
    r"|\bnever (?:felt|been) (?:so|this|more)\b")
_SELF = _wordset("i i'm im i'd id i've ive i'll me my mine myself meself kms we our ourselves us") | {"my self"}
_OTHER = _wordset("""
    he she they him her them his hers their he'd she'd they'd he'll she'll they'll hed shed theyd himself herself themselves themself you your yourself yourselves u
    ur urself kys he's she's they're hes shes theyre someone somebody anyone everyone people person man men
    woman women guy guys girl girls boy boys kid kids child children teen teens teenager teenagers student
    students veteran veterans soldier soldiers friend friends bestie bf gf boyfriend girlfriend partner husband
    wife ex mom mum mother dad father parent parents brother sister sibling siblings son daughter cousin aunt
    uncle grandma grandpa grandmother grandfather roommate classmate coworker colleague neighbor neighbour
    patient patients client clients female male victim victims user users fan fans celebrity actor actress
    singer rapper member youth character characters protagonist narrator villain hero heroine detective killer
    caller callers author poet grandad granddad nan nana gran nephew niece flatmate housemate mate buddy cat dog
    pet vet nurse doctor""")
# pronouns inside a phrase that make it someone else's ("kill herself", "end his life"); not "you", the
# addressee of a farewell ("by the time you read this")
_OTHER_INSIDE = _wordset("him her them his their himself herself themselves themself your yourself yourselves ur"
                         " urself kys")
# words after a phrase that make it a topic, not a person's statement ("suicide rates", "overdose crisis")
_TOPICAL = _wordset("rate rates prevention awareness statistics stats research epidemic crisis deaths death month"
                    " day week bomber bombers bombing attack attacks mission door doors")
# someone else telling the poster to do it ("was told to kill myself")
_TOLD_TO = re.compile(r"\b(?:(?:told|tell|tells|telling|asked|asks|asking|wants?|wanted|begged|urged|urging) me"
                      r"|(?:was|been|being|get|got|getting|am|are|is) told|said (?:that )?i should"
                      r"|(?:tells?|told|telling) me (?:that )?i should) (?:to |2 )?$")
_WORD = re.compile(r"[a-z][a-z']*")
_PREPOSITIONS = _wordset("for to at from about of on by like than without towards toward")
_DETERMINERS = _wordset("my his her their your our the a an this that")
_ADDRESSED = ("violent_thoughts", "farewell", "death_as_gift", "preparations", "means_access", "attempt_in_progress")
# a sentence that vents about an irritant ("this traffic is making me want to…", "if I have to sit through one
# more meeting I'll…"): hyperbole, one level lower
_HYPERBOLE = re.compile(
    r"\bif (?:i|we) (?:have|had|need) to (?:\S+ ){1,5}?(?:one more|another|again)\b"
    r"|\b(?:one more|another) (?:\S+ )?(?:time|minute|meeting|email|call|song|episode|lecture|shift)\b(?: \S+)? (?:and|i'?ll|i'?m)\b"
    r"|\b(?:this|that|the|my) (?:\w+ )?(?:traffic|exam|test|meeting|class|lecture|homework|assignment|essay|commute"
    r"|queue|weather|heat|wifi|printer|game|match|project|group project|interview|boss|neighbou?r) (?:is|was|keeps)"
    r" (?:making|gonna make|going to make|killing) me\b")
# a sentence that tells a story, quotes a lyric or teaches prevention: its phrases are not the poster's
_FRAME = re.compile(
    r"\bin (?:the|this|that|a|my|his|her) (?:song|film|movie|book|novel|show|series|episode|story|game|play|poem"
    r"|chapter|scene|lyrics?|plot)\b|\b(?:the|this) (?:chorus|verse|plot|scene|villain|character)\b"
    r"|\b(?:the|this) (?:final |last |first |new )?(?:episode|film|movie|novel|book|series|show|song|album|chapter)"
    r" (?:ends|opens|starts|is about|where|in which)\b"
    r"|\bis (?:the|a|my) (?:best |favou?rite |saddest )?(?:line|lyric)\b"
    r"|\b(?:warning signs?|risk factors?|we teach|we train|trained to|our training|training covered|if someone|if a"
    r" person|if you notice|if you see|how to (?:ask|respond|help)|safety planning|means restriction)\b")
# a sentence set years back: a history
_PAST = re.compile(
    r"\b(?:\w+ )?years? ago\b|(?<!'m )(?<!am )(?<!be )(?<!get )(?<!got )\bused to\b"  # not "I'm used to"
    r"|\bback in (?:\d{4}|school|college|uni|high school|the day)\b|\bback when i\b|\bin (?:19|20)\d\d\b"
    r"|\bthat was (?:\d{4}|years)"
    r"|\bat my (?:lowest|worst)\b|\bwhen i was (?:younger|a (?:kid|child|teen|teenager)|little|in (?:high )?school"
    r"|at (?:school|uni|college)|\d{1,2}|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen)\b"
    r"|\bat (?:age )?(?:\d{1,2}|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen)(?=,| i\b)"
    r"|\bi'?m (?:\d{2}|twenty|thirty|forty|fifty|sixty)(?: \w+)? now\b|\bi survived\b")
_SENTENCE_END = re.compile(r"[.!?]")
NEGATION_WINDOW = 3  # words before a phrase in which a negation counts
SUBJECT_WINDOW = 8  # words before a phrase searched for its subject


@dataclass(frozen=True)
class TextHit:
    category: str
    level: str  # CRISIS or CONCERN (lowered concerns and unraised mentions are dropped)
    subject: str  # "self" or "other"
    negated: bool
    past: bool = False  # set years back ("years ago", "used to")


def _words(s: str) -> list[str]:
    return _WORD.findall(s)


def _subject(category: str, form: str, m: re.Match, clause: str, sentence: str) -> str:
    inside = _words(m.group(0))
    # in _ADDRESSED categories someone else inside the phrase or just after it is a target, an addressee, a
    # beneficiary, an owner or the thing taken ("hurt him", "don't blame yourselves", "letters to my mum",
    # "stop being her problem", "his rifle", "took them all"), not whose risk it is
    addressed = category in _ADDRESSED
    if not addressed and any(w in _OTHER_INSIDE for w in inside) and not any(w in _SELF for w in inside):
        return "other"
    if _TOLD_TO.search(clause) or _FRAME.search(sentence):
        return "other"
    after = _words(re.split(r"[.!?;:,]", form[m.end():m.end() + 24], maxsplit=1)[0])[:1]  # same clause
    if after and not addressed and (after[0] in _TOPICAL or after[0] in _OTHER - {"you", "u"}):
        return "other"  # "suicide rates", "a suicidal teen"
    if after and after[0] in _SELF:
        return "self"  # "how suicidal I am"
    if any(w in _SELF for w in inside):
        return "self"
    words = _words(clause)[-SUBJECT_WINDOW:]
    for k in range(len(words) - 1, -1, -1):
        w = words[k]
        if w in _SELF:
            return "self"
        if w in _OTHER and not _object(words[:k]):
            return "other"
    return "self"


def _object(before: list[str]) -> bool:
    """Is the word after `before` a preposition's object ("for my wife", "to the kids"), not a subject?"""
    if before and before[-1] in _DETERMINERS:
        before = before[:-1]
    return bool(before) and before[-1] in _PREPOSITIONS


def _negated(clause: str) -> bool:
    words = _words(_PSEUDO_NEG.sub(" ", clause))[-NEGATION_WINDOW:]
    return any(w.replace("'", "") in _NEG or w.endswith("n't") for w in words)


CLAUSE_CHARS = 160  # how far back a clause is looked for (bounded: a post with many matches stays linear)
SENTENCE_CHARS = 240  # how far a sentence is looked for, either side of a phrase
RAISE_WINDOW = 240  # characters either side of a phrase in which a cue or another signal raises it


@dataclass(frozen=True)
class _Found:
    """One match in one normalised form, before combinations."""
    category: str
    strength: str  # CRISIS, CONCERN or MENTION: the phrase's own
    start: int
    end: int
    subject: str
    negated: bool
    past: bool

    @property
    def live(self) -> bool:  # the poster's, now, not denied
        return self.subject == "self" and not self.negated and not self.past


def _sentence(form: str, start: int, end: int) -> str:
    before = form[max(0, start - SENTENCE_CHARS):start]
    ends = list(_SENTENCE_END.finditer(before))
    after = form[end:end + SENTENCE_CHARS]
    stop = _SENTENCE_END.search(after)
    return (before[ends[-1].end():] if ends else before) + form[start:end] + (after[:stop.start()] if stop else after)


def _context(form: str, start: int, end: int) -> tuple[str, str]:
    """The clause before a phrase and the sentence around it."""
    before = form[max(0, start - CLAUSE_CHARS):start]
    ends = list(_CLAUSE_END.finditer(before))
    return (before[ends[-1].end():] if ends else before), _sentence(form, start, end)


def _found(form: str) -> list[_Found]:
    out = []
    for category, strength, pattern in PATTERNS:
        for m in pattern.finditer(form):
            clause, sentence = _context(form, m.start(), m.end())
            negated = _negated(clause) or bool(_HYPERBOLE.search(sentence))  # both one level lower
            out.append(_Found(category, strength, m.start(), m.end(), _subject(category, form, m, clause, sentence),
                              negated, bool(_PAST.search(sentence))))
    return out


def _cues(form: str) -> dict[str, list[tuple[int, int]]]:
    """Cue group → spans of its phrases (many are negative in form: "won't be needing them", "don't want to
    leave a mess": no negation test)."""
    return {group: [m.span() for m in pattern.finditer(form)] for group, pattern in CUE_PATTERNS.items()}


def _near(f: _Found, start: int, end: int) -> bool:
    return start < f.end + RAISE_WINDOW and end > f.start - RAISE_WINDOW and not (start < f.end and end > f.start)


def _raised(f: _Found, found: list[_Found], cues: dict[str, list[tuple[int, int]]]) -> bool:
    """A CONCERN or MENTION phrase of a behaviour category, the poster's, with a cue of its groups or another
    signal nearby (a phrase of another category at CONCERN or above; for PAIRED categories, another phrase
    of its own)."""
    if not f.live or f.category not in RAISED_BY:
        return False
    if any(_near(f, a, b) for group in RAISED_BY[f.category] for a, b in cues.get(group, ())):
        return True
    return any(g.live and g.strength != MENTION and _near(f, g.start, g.end)
               and (g.category != f.category or f.category in PAIRED or f.strength == MENTION) for g in found)


def _level(f: _Found, found: list[_Found], cues: dict, returns: bool) -> str | None:
    level = f.strength
    if level == CONCERN and f.category == "farewell" and returns:
        return None  # "Goodbye everyone, see you next week!"
    if level in (CONCERN, MENTION) and _raised(f, found, cues):
        level = CRISIS
    if level == MENTION:
        return None
    if f.subject == "other":
        level = CONCERN
    if f.negated or f.past:
        return None if level == CONCERN else CONCERN
    return level


def _rank(h: TextHit) -> tuple:
    return (h.level == CRISIS, h.subject == "self", not h.negated, not h.past)


FORM_MARGIN = 3 * RAISE_WINDOW  # context kept around a changed word when another form is matched


def _changed(base: str, form: str) -> list[tuple[int, int, list[tuple[int, int]]]] | None:
    """Where `form` differs from `base`: windows (start, end, the changed words' spans in the window) that
    reach FORM_MARGIN beyond every changed word, overlapping ones merged; None when the forms do not have the
    same words or the windows would cover most of the form (then all of it is matched)."""
    a, b = base.split(" "), form.split(" ")
    if len(a) != len(b):
        return None
    windows: list[list] = []
    pos = 0
    for x, y in zip(a, b):
        if x != y:
            lo, hi = max(0, pos - FORM_MARGIN), pos + len(y) + FORM_MARGIN
            if windows and lo <= windows[-1][1]:
                windows[-1][1] = hi
                windows[-1][2].append((pos, pos + len(y)))
            else:
                windows.append([lo, hi, [(pos, pos + len(y))]])
        pos += len(y) + 1
    if sum(hi - lo for lo, hi, _ in windows) > len(form) // 2:
        return None
    return [(lo, hi, [(s - lo, e - lo) for s, e in words]) for lo, hi, words in windows]


def _hits(form: str, returns: bool, keep: list[tuple[int, int]] | None = None) -> list[TextHit]:
    """The hits of one form (or of a window of it: only those that overlap a changed word in `keep`, whose
    context the window holds whole)."""
    found, cues = _found(form), _cues(form)
    out = []
    for f in found:
        if keep is not None and not any(f.start < e and f.end > s for s, e in keep):
            continue
        level = _level(f, found, cues, returns)
        if level is not None:
            out.append(TextHit(f.category, level, f.subject, f.negated, f.past))
    return out


def text_hits(text: str) -> list[TextHit]:
    """The strongest hit of each lexicon category in `text` (none when nothing matches). The first form is
    matched whole; the others (leetspeak and repeated-letter readings) only around the words they change."""
    forms = variants(text)
    returns = bool(RETURN_PATTERN.search(forms[0]))
    hits = _hits(forms[0], returns)
    for form in forms[1:]:
        changed = _changed(forms[0], form)
        if changed is None:
            hits += _hits(form, returns)
        for lo, hi, words in changed or ():
            hits += _hits(form[lo:hi], returns, words)
    best: dict[str, TextHit] = {}
    for h in hits:
        if h.category not in best or _rank(h) > _rank(best[h.category]):
            best[h.category] = h
    order = list(dict.fromkeys(c for c, _, _ in PATTERNS))
    return [best[c] for c in order if c in best]
