"""The text source of the crisis screen: lexicon matches, with negation and whose risk they state.

For every lexicon match (lexicon.py, on every normalised form of the post, normalize.py) two questions
decide its level; both look only at the clause the match sits in (clauses end at . ! ? ; : , brackets and
at but/and/so/because/though/or):

- Whose risk? The pronoun in the phrase decides ("kill myself" → self, "kill herself" → other). A phrase
  without one takes the nearest subject before it ("my friend said she wants to die" → she → other; "it
  makes me want to die" → me → self); with none, the poster (self). Someone telling the poster to do it
  ("told me to kill myself") and topical uses ("suicide rates") count as other.
- Negated? A negation among the three words before the phrase ("I would never kill myself", "I'm not
  suicidal", "I haven't cut in a year"), unless it is one of the forms that do not negate the phrase
  ("can't stop thinking about killing myself", "not even joking", "why don't I just…", "no one").

Level of a match: the category's level (CRISIS or CONCERN); someone else's risk is at most CONCERN (it
includes bereavement and news, and a lexicon cannot tell an emergency from a memory); a negation lowers
the level one step (a negated CONCERN phrase, "I'm not giving up on life", is no signal). So "I would
never kill myself" is a concern, not a crisis: people rarely deny what is not on their mind, and a
reviewer should see it; "my friend wants to die" is a concern, with resources for the friend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mental_r1.screen.lexicon import CONCERN, CRISIS, LEVELS, PATTERNS
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
    he she they him her them his hers their himself herself themselves themself you your yourself yourselves u
    ur urself kys he's she's they're hes shes theyre someone somebody anyone everyone people person man men
    woman women guy guys girl girls boy boys kid kids child children teen teens teenager teenagers student
    students veteran veterans soldier soldiers friend friends bestie bf gf boyfriend girlfriend partner husband
    wife ex mom mum mother dad father parent parents brother sister sibling siblings son daughter cousin aunt
    uncle grandma grandpa grandmother grandfather roommate classmate coworker colleague neighbor neighbour
    patient patients client clients female male victim victims user users fan fans celebrity actor actress
    singer rapper member youth""")
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
NEGATION_WINDOW = 3  # words before a phrase in which a negation counts
SUBJECT_WINDOW = 8  # words before a phrase searched for its subject


@dataclass(frozen=True)
class TextHit:
    category: str
    level: str  # CRISIS or CONCERN (negated concerns are dropped)
    subject: str  # "self" or "other"
    negated: bool


def _words(s: str) -> list[str]:
    return _WORD.findall(s)


def _subject(category: str, form: str, m: re.Match, clause: str) -> str:
    # in violent thoughts the pronoun inside the phrase is the target ("hurt him"): the subject is before it
    inside = [] if category == "violent_thoughts" else _words(m.group(0))
    if any(w in _OTHER_INSIDE for w in inside) and not any(w in _SELF for w in inside):
        return "other"
    if _TOLD_TO.search(clause):
        return "other"
    after = _words(form[m.end():m.end() + 24])[:1]
    if after and (after[0] in _TOPICAL or after[0] in _OTHER - {"you", "u"}):
        return "other"  # "suicide rates", "a suicidal teen"
    if after and after[0] in _SELF:
        return "self"  # "how suicidal I am"
    if any(w in _SELF for w in inside):
        return "self"
    for w in reversed(_words(clause)[-SUBJECT_WINDOW:]):
        if w in _SELF:
            return "self"
        if w in _OTHER:
            return "other"
    return "self"


def _negated(clause: str) -> bool:
    words = _words(_PSEUDO_NEG.sub(" ", clause))[-NEGATION_WINDOW:]
    return any(w.replace("'", "") in _NEG or w.endswith("n't") for w in words)


CLAUSE_CHARS = 160  # how far back a clause is looked for (bounded: a post with many matches stays linear)


def _hit(category: str, form: str, m: re.Match) -> TextHit | None:
    before = form[max(0, m.start() - CLAUSE_CHARS):m.start()]
    ends = list(_CLAUSE_END.finditer(before))
    clause = before[ends[-1].end():] if ends else before
    subject, negated = _subject(category, form, m, clause), _negated(clause)
    level = LEVELS[category]
    if subject == "other":
        level = CONCERN
    if negated:
        if level == CONCERN:
            return None
        level = CONCERN
    return TextHit(category, level, subject, negated)


def _rank(h: TextHit) -> tuple:
    return (h.level == CRISIS, h.subject == "self", not h.negated)


def text_hits(text: str) -> list[TextHit]:
    """The strongest hit of each lexicon category in `text` (none when nothing matches)."""
    best: dict[str, TextHit] = {}
    for form in variants(text):
        for category, pattern in PATTERNS.items():
            for m in pattern.finditer(form):
                h = _hit(category, form, m)
                if h and (category not in best or _rank(h) > _rank(best[category])):
                    best[category] = h
    return [best[c] for c in PATTERNS if c in best]
