"""Text normalisation for crisis matching: what a post says, not how it is spelt.

The lexicon (lexicon.py) is written in lower-case ASCII; `variants(text)` turns a post into the forms it is
matched in:
1. NFKC: fullwidth (ｋｉｌｌ), mathematical alphanumerics (𝐤𝐢𝐥𝐥, 𝓀𝒾𝓁𝓁), circled and superscript letters,
   ligatures → plain letters.
2. Accents, combining marks and invisible format characters (zero-width spaces and joiners, soft hyphens,
   bidi controls, variation selectors) are removed.
3. Look-alikes (CONFUSABLES): Cyrillic, Greek, Armenian and Cherokee letters and Latin small capitals that
   render like a Latin letter (Cyrillic "кіll" → "kill"); a hand-picked subset of Unicode's confusables.txt
   for the 26 letters the lexicon uses, applied before and after case folding. Applied to every character,
   so a post in Russian or Greek becomes Latin-looking gibberish; the lexicon is English and that gibberish
   cannot spell its phrases. Curly apostrophes become "'", dashes "-".
4. Censoring inside words (k*ll, s**cide): a word with "*" between letters that matches exactly one word of
   CENSORED_WORDS becomes that word; then quotes and emphasis marks go ('is "worth" living').
5. Spaced-out letters (k i l l, k.i.l.l, k-i-l-l): runs of three or more single letters are joined.
6. Leetspeak (k1ll, su1c1de, $uicide, k!ll): in a word with letters, digits become the letters they stand
   for (not in ordinals and units: 14th, 90s, 11pm, 40mg); symbols only between letters. "1", "!" and "|" read as i in one form and l in another.
7. Letters repeated three times or more (diiie, killlll) are matched both squeezed to one and to two.
Steps 1-5 give `canonical`; 6 and 7 give the few forms of `variants`.
This is for matching only: the service never returns or logs the normalised text.
"""

from __future__ import annotations

import re
import unicodedata


def _pairs(spec: str) -> dict[int, str]:
    """'аa еe' → {ord('а'): 'a', ord('е'): 'e'}: each item is look-alike characters followed by one ASCII letter."""
    table = {}
    for item in spec.split():
        *chars, latin = item
        for ch in chars:
            table[ord(ch)] = latin
    return table


CONFUSABLES: dict[int, str] = _pairs(
    # Cyrillic (lower, upper)
    "аАa вВb сСc ԁd еЕэe һҺнНh іІi јЈj кКk ӏl мМm пn оОo рРp ԛq гr ѕЅs тТt уУy хХx ԝw ьЬb"
    # Greek
    " αΑa βΒb εΕe ηn ΗH ιΙi κΚk μu νv ΝN οΟo ρΡp τt ΤT υu ΥY χΧx ωw ςs ΜM ΖZ"
    # Armenian, Cherokee
    " օo սu հh ոn զq ցg ԁd ᎪA ᏴB ᏟC ᎬE ᎻH ᎫJ ᏦK ᏞL ᎷM ᏢP ᏚS ᎢT ᏔW ᏃZ"
    # Latin small capitals and other Latin look-alikes (dotless i/j, script g, alpha)
    " ᴀa ʙb ᴄc ᴅd ᴇe ғf ɢg ʜh ɪıi ᴊȷj ᴋk ʟl ᴍm ɴn ᴏo ᴘp ǫq ʀr ꜱs ᴛt ᴜu ᴠv ᴡw ʏy ᴢz ɑa ɡg ſs"
)

LEET: dict[str, str] = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "+": "t"}
LEET_I_OR_L = "1!|"  # read as i in one variant and l in the other
CENSORED_WORDS = ("kill", "killing", "killed", "myself", "suicide", "suicidal", "die", "dying", "dead", "death",
                  "cut", "cutting", "self", "harm", "overdose", "hang", "wrist", "wrists", "life")

_APOSTROPHES = str.maketrans({c: "'" for c in "\u2018\u2019\u201b\u02bc\u02b9\u0060\u00b4\u2032\uff07"})
_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"})
_TOKEN = re.compile(r"\S+")
_CENSORED_WORD = re.compile(r"\b[a-z]+(?:\*+[a-z]+)+")
_SPACED = re.compile(r"\b[a-z](?:[ .\-_*][a-z]){2,}\b")
_REPEAT = re.compile(r"([a-z])\1{2,}")
_SPACE = re.compile(r"\s+")
_EMPHASIS = re.compile(r"[\"\u201c\u201d\u201e\u00ab\u00bb*_~]")


def _strip_marks(text: str) -> str:
    """Drop combining marks (accents, variation selectors) and format characters (zero-width, bidi)."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me", "Cf"))
    return unicodedata.normalize("NFC", kept)


_NUMBER_WORD = re.compile(r"\d+(?:st|nd|rd|th|s|am|pm|mg|ml|kg)\W*")  # 14th, 90s, 11pm, 40mg: numbers, not leet


def _deleet(word: str, i_or_l: str) -> str:
    if word.isalpha() or not any(c.isalpha() for c in word) or _NUMBER_WORD.fullmatch(word):
        return word
    out = []
    for k, c in enumerate(word):
        # digits stand for letters in a word with letters; symbols only between letters ("k!ll", not "die!!"),
        # and @ and $ also before one ("$uicide")
        before = k > 0 and (word[k - 1].isalpha() or word[k - 1] in LEET)
        after = k + 1 < len(word) and (word[k + 1].isalpha() or word[k + 1] in LEET or word[k + 1] in "1")
        symbol_ok = after and (before or c in "@$")
        if c in LEET and (c.isdigit() or symbol_ok):
            out.append(LEET[c])
        elif c in LEET_I_OR_L and (c == "1" or symbol_ok):
            out.append(i_or_l)
        else:
            out.append(c)
    return "".join(out)


def _uncensor(match: re.Match) -> str:
    word = match.group(0)
    if len(word) > 24:  # no crisis word is that long (and a pattern built from a huge word is slow to compile)
        return word
    pattern = re.compile("".join(r"[a-z]{1,2}" if c == "*" else re.escape(c) for c in re.sub(r"\*+", "*", word)))
    hits = [w for w in CENSORED_WORDS if pattern.fullmatch(w)]
    return hits[0] if len(hits) == 1 else word


def canonical(text: str) -> str:
    """Steps 1-5: one lower-case, mostly ASCII string (leetspeak and repeats are in `variants`)."""
    # look-alikes before case folding (Cherokee and Greek capitals fold to other look-alikes) and after it
    t = _strip_marks(unicodedata.normalize("NFKC", text)).translate(CONFUSABLES)
    t = t.casefold().translate(CONFUSABLES).translate(_APOSTROPHES).translate(_DASHES)
    t = _CENSORED_WORD.sub(_uncensor, t)
    t = _EMPHASIS.sub("", t)  # quotes and emphasis marks around words: 'is "worth" living', '*kill*'
    t = _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), t)
    return _SPACE.sub(" ", t).strip()


def variants(text: str) -> list[str]:
    """The forms of `text` the lexicon is matched in (usually one; a few when leetspeak or repeats are
    ambiguous). Every form has the same words in the same order: only spellings differ."""
    base = canonical(text)
    forms = []
    for i_or_l in ("i", "l"):
        form = _TOKEN.sub(lambda m, r=i_or_l: _deleet(m.group(0), r), base)
        form = _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), form)
        forms += [form, _REPEAT.sub(r"\1", form), _REPEAT.sub(r"\1\1", form)]
    return list(dict.fromkeys(forms))  # unique, in order
