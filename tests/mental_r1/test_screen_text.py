"""The text source of the crisis screen: every lexicon category, negation, whose risk, normalisation.

The sentences are written for these tests (the kind of language each category covers), not taken from
any dataset."""

import pytest

from mental_r1.screen.lexicon import CATEGORIES, CONCERN, CRISIS, LEVELS
from mental_r1.screen.normalize import canonical, variants
from mental_r1.screen.text import text_hits


def hits(text: str) -> dict[str, tuple[str, str, bool]]:
    return {h.category: (h.level, h.subject, h.negated) for h in text_hits(text)}


# category → (sentences that must raise it, sentences that must raise nothing at all)
CASES = {
    "suicidal_ideation": (
        ["I want to kill myself", "thinking about ending my life", "I'm going to take my own life",
         "I've been suicidal for weeks", "I just need to die", ("I really want to die and will try at the next "
         "chance I get"), "honestly kms", "planning to end it all this weekend", "I want to unalive myself",
         "i'll kill him and then myself"],
        ["This movie killed it, I laughed to death", "My exam is killing me", "I'm dying to see that show",
         "Cross my heart and hope to die", "I thought I was going to die on that rollercoaster",
         "We watched Suicide Squad last night", "Take my life savings, I don't care", "killing myself laughing"]),
    "death_wish": (
        ["Why am I still alive?", "my life is not worth living", "Life isn't worth living anymore",
         "I don't think my life is \"worth\" living", "I wish I was dead", "I hope I don't wake up tomorrow",
         "I wish I had never been born", "I'd rather be dead", "I'm so tired of living",
         "I don't want to live anymore", "there's no reason to live", "someone please just kill me",
         "I don't care if I die", "every day I think this will be the day my life will end"],
        ["Life is worth living when you have friends", "I don't want to live in this city",
         "I didn't wake up on time", "My mom is going to kill me when she sees the car",
         "This sofa is worth buying", "I'd rather die than wear that outfit"]),
    "suicide_method": (
        ["I've been saving up my pills", "I took a handful of pills last night", ("I keep thinking about "
         "jumping off the bridge"), "I bought a rope and tied a noose", "I'm about to start cutting my wrist again",
         "sometimes I want to step in front of a train", "what's the most painless way to die",
         "how many tylenol would kill me", "i want to overdose"],
        ["I took my meds this morning", "We jumped off the boat into the lake", "I broke my wrist skating",
         "He stepped into the car", "I walked under a bridge on my way home"]),
    "self_harm": (
        ["I started cutting myself again", "I want to cut my skin", "I've been self-harming since I was 14",
         "I burned myself with a lighter on purpose", "the urge to cut is so strong", "I hide my scars",
         "I relapsed on cutting", "I've been cutting again"],
        ["I cut my hair short", "We've been cutting down on sugar", "I went to a self-help workshop",
         "I'm cutting class tomorrow", "I had to cut onions for dinner", "budget cuts hit the school",
         "I hurt myself at the gym"]),
    "farewell": (
        ["This is my final goodbye", "By the time you read this I'll be gone", "I wrote my goodbye letters",
         "I'm giving away all my stuff", "I won't be here much longer", "Goodbye cruel world",
         # behaviour.py: weaker goodbyes, two of them or one with a cue
         "If it is the last thing I post, know that I tried", "Thank you all for everything. Goodbye.",
         "you'll never hear from me again", "Please don't blame yourself, none of this is your fault",
         "tell my brother I love him. I'm so sorry for everything"],
        ["Goodbye everyone, see you next week!", "I said goodbye to my friends at the airport",
         "This is my last day at work", "My final exam is tomorrow",
         "Thanks for everything, see you at the reunion!", "Goodbye everyone, back on Monday",
         "Thanks for the help, I'll try that fix", "Can you look after my plants while I'm away?"]),
    "perceived_burdensomeness": (
        ["I'm such a burden to my family", "everyone would be better off without me",
         "nobody would even notice if I was gone", "I feel like a burden", "I'm just a waste of space"],
        ["Thanks for carrying that burden with me", "Throw your emotional burdens into the river",
         "The project went better with me on it"]),
    "hopelessness": (
        ["I can't take this anymore", "I can't do this anymore", "I can't go on like this", "I feel so trapped",
         "there's no way out", "what's the point of living", "I want it all to end", "make the pain stop",
         "I just want to disappear forever", "I'm giving up on life"],
        ["I can't take the bus today", "Is there a way out of the parking garage?", ("I can't keep going to "
         "that gym"), "I want this meeting to end soon", "I'm giving up sugar for lent",
         "I want to disappear from social media for a while"]),
    "violent_thoughts": (
        ["I could kill someone right now", "I want to hurt him for what he did"],
        ["Kill them with kindness", "I don't want to hurt anyone's feelings"]),
    # behaviour.py: a CONCERN or MENTION phrase counts as a crisis only with a cue or another signal nearby
    "attempt_in_progress": (
        ["I've just swallowed a whole bottle of my tablets", "took like 30 of my sleeping pills, feeling dizzy",
         "i took them all about ten minutes ago", "I drank weed killer and I'm scared",
         "my car is running in the garage with the door shut"],
        ["I took all my antibiotics like the doctor said", "We're on the roof terrace for the party",
         "I downed a whole bottle of water after the run", "My nose won't stop bleeding after the match"]),
    "means_access": (
        ["I've got enough tablets in the cupboard to make sure I don't wake up", "my meds are all saved in a tin",
         "there is a gun in my dad's safe and I keep thinking about it", "i carry a blade around just in case",
         "I know exactly which building I'd use"],
        ["We packed a rope and a first aid kit for the hike", "Grandpa keeps his shotgun locked in the barn",
         "The pharmacist counted out thirty tablets for my prescription", "What a view from the bridge this morning"]),
    "preparations": (
        ["I've written my note and put it under my pillow", "Rehomed my hamster and paid off every debt. No point keeping anything.",
         "I'm tying up loose ends and I sold my bike to my cousin", "I've been giving my things away to friends this month",
         "cancelled my lease and my phone. won't be needing them"],
        ["We gave our old sofa to my sister when we moved", "Deleted my old facebook account, so much calmer online",
         "Cancelled my gym membership because it's too expensive", "I wrote a letter to my pen pal in Japan"]),
    "intent_plan": (
        ["I've made up my mind. It will happen on Saturday night when the house is empty",
         "Tomorrow is the day. I'm at peace", "I know when and how to do it",
         "I've chosen the date and nobody needs to know", "the plan is set. no one can stop me now"],
        ["We set the date for the christening", "I'm finally going to do it - signing up for the half marathon!",
         "Tomorrow is the day we move house", "I know how to do it, I watched a tutorial"]),
    "death_as_gift": (
        ["My kids would be better off if I was dead", "my suicide would free them from all of this",
         "their lives would be easier with me gone for good, I'd be doing them a favour",
         "the life insurance would cover the mortgage for my husband"],
        ["Life insurance would cover the mortgage if anything happened, the adviser said",
         "My brother would be better off if he quit that job", "Doing them a favour, I picked up their shopping"]),
}


def test_every_category_has_cases():
    assert set(CASES) == set(CATEGORIES)


@pytest.mark.parametrize("category, text", [(c, t) for c, (pos, _) in CASES.items() for t in pos])
def test_positive(category, text):
    got = hits(text)
    assert category in got, got
    level, subject, negated = got[category]
    assert level == LEVELS[category] and subject == "self" and not negated, got


@pytest.mark.parametrize("category, text", [(c, t) for c, (_, neg) in CASES.items() for t in neg])
def test_negative(category, text):
    assert hits(text) == {}


@pytest.mark.parametrize("text, category", [
    ("I would never kill myself", "suicidal_ideation"),
    ("I'm not suicidal, just exhausted", "suicidal_ideation"),
    ("I didn't cut myself today", "self_harm"),
    ("I haven't cut in 3 months", "self_harm"),
    ("I don't want to kill myself but I don't know how to go on", "suicidal_ideation"),
])
def test_a_negated_crisis_phrase_is_a_concern(text, category):
    assert hits(text)[category] == (CONCERN, "self", True)


@pytest.mark.parametrize("text", ["I'm not a burden to anyone", "I'm not giving up on life",
                                  "I don't feel trapped anymore"])
def test_a_negated_concern_phrase_is_no_signal(text):
    assert hits(text) == {}


@pytest.mark.parametrize("text, category", [
    ("I can't stop thinking about killing myself", "suicidal_ideation"),
    ("not even joking, I want to die", "suicidal_ideation"),
    ("why don't I just kill myself", "suicidal_ideation"),
    ("I don't know why I want to die", "suicidal_ideation"),
    ("I'm not sad, I want to die", "suicidal_ideation"),
    ("No one would care if I killed myself", "suicidal_ideation"),
    ("my parents will never know how suicidal I am", "suicidal_ideation"),
])
def test_words_that_do_not_negate_the_phrase(text, category):
    assert hits(text)[category] == (CRISIS, "self", False)


@pytest.mark.parametrize("text, category", [
    ("my friend said she wants to die", "suicidal_ideation"),
    ("My brother tried to kill himself last year", "suicidal_ideation"),
    ("my girlfriend cuts herself and I don't know how to help", "self_harm"),
    ("I was told to kill myself", "suicidal_ideation"),
    ("you should kill yourself", "suicidal_ideation"),
    ("Suicide rates are rising among teens", "suicidal_ideation"),
    ("22 veterans commit suicide each day", "suicidal_ideation"),
    ("He says everyone would be better off without him", "perceived_burdensomeness"),
])
def test_someone_elses_risk_is_still_a_signal_at_concern(text, category):
    assert hits(text)[category] == (CONCERN, "other", False)


def test_reported_and_negated_is_no_signal():
    assert hits("He didn't kill himself") == {}


def test_first_person_after_a_report_is_the_posters():
    assert hits("I told my therapist that I want to die")["suicidal_ideation"] == (CRISIS, "self", False)
    assert hits("Her music makes me want to die")["suicidal_ideation"] == (CRISIS, "self", False)


@pytest.mark.parametrize("text", [
    "I want to ｋｉｌｌ ｍｙｓｅｌｆ",          # fullwidth
    "I want to 𝐤𝐢𝐥𝐥 𝐦𝐲𝐬𝐞𝐥𝐟",               # mathematical bold
    "I want to 𝓀𝒾𝓁𝓁 𝓂𝓎𝓈𝑒𝓁𝒻",               # mathematical script
    "I want to кіll mуsеlf",               # Cyrillic к і у е
    "I want to κιll myself",               # Greek κ ι
    "I want to ᴋɪʟʟ ᴍʏsᴇʟғ",               # small capitals
    "I want to k\u200bi\u200bl\u200bl myself",  # zero-width spaces
    "I want to kíll mýself",               # accents
    "I WANT TO KILL MYSELF",
    "I want to k1ll mys3lf", "I want to ki11 myself", "I want to k!ll myself", "i want to $uicide",
    "I want to k i l l myself", "I want to k.i.l.l myself", "I want to k*ll myself", "I'm s**cidal",
    "I want to diiiie", "I want to killlll myself",
])
def test_spelling_does_not_hide_a_phrase(text):
    got = hits(text)
    assert got.get("suicidal_ideation", (None,))[0] == CRISIS, (text, variants(text), got)


def test_normalisation_keeps_ordinary_text_and_apostrophes():
    assert canonical("Don’t  worry,\tit’s “fine”") == "don't worry, it's fine"
    assert canonical("24/7 support, call 988") == "24/7 support, call 988"
    assert variants("kill!") == ["kill!"]  # a "!" that ends a word is punctuation, not an i


def test_hits_hold_no_text():
    for h in text_hits("I want to kill myself. My friend cuts herself. I'm a burden."):
        assert set(vars(h)) == {"category", "level", "subject", "negated", "past"}


def test_farewell_letters_with_burdensomeness_are_a_crisis():
    """The issue's example: each half alone is not a crisis; together they are."""
    both = hits("i wrote letters to my mum and my sister tonight. everyone will be better off when i'm gone")
    assert both["preparations"] == (CRISIS, "self", False) and both["perceived_burdensomeness"][0] == CONCERN
    assert hits("i wrote letters to my mum and my sister tonight") == {}
    assert hits("everyone will be better off when i'm gone") == {"perceived_burdensomeness": (CONCERN, "self", False)}


@pytest.mark.parametrize("text, category", [
    ("there's a rope in the shed and all I can think about is using it", "means_access"),  # means + a cue
    ("I have a rope in my car. I want to die", "means_access"),                          # means + intent
    ("I gave my records to my best friend. I can't do this anymore", "preparations"),     # an act + a warning sign
    ("i'm gonna do it tonight", "intent_plan"),                                           # intent + timing
])
def test_combinations_make_a_crisis(text, category):
    assert hits(text)[category] == (CRISIS, "self", False)


@pytest.mark.parametrize("text", ["We bought a rope for the tree swing", "I gave my old phone to my nephew",
                                  "There's a bridge near my office", "I love you all so much, happy new year!"])
def test_a_mention_alone_is_no_signal(text):
    assert hits(text) == {}


def test_an_attempt_in_progress_is_a_crisis_unless_it_is_someone_elses_past_or_denied():
    assert hits("I've taken 25 of my pills")["attempt_in_progress"] == (CRISIS, "self", False)
    assert hits("my sister just took 40 paracetamol")["attempt_in_progress"] == (CONCERN, "other", False)
    assert hits("I haven't taken 25 of my pills, I'm safe")["attempt_in_progress"] == (CONCERN, "self", True)


@pytest.mark.parametrize("text, category", [
    ("Years ago I used to cut myself", "self_harm"),
    ("When I was 16 I wrote my note and took 30 pills", "attempt_in_progress"),
    ("At my lowest I thought about ending my life", "suicidal_ideation"),
])
def test_the_past_is_a_history_one_level_lower(text, category):
    h = next(h for h in text_hits(text) if h.category == category)
    assert (h.level, h.past) == (CONCERN, True)


@pytest.mark.parametrize("text", ["I'm used to feeling like this and I want to die",
                                  "I want to go back in time. I want to die"])
def test_words_of_time_that_are_not_the_past(text):
    assert hits(text)["suicidal_ideation"] == (CRISIS, "self", False)


@pytest.mark.parametrize("text", [
    "In the movie the girl takes 50 sleeping pills",             # a story
    "'take me in my sleep' is my favourite lyric on the record",  # a lyric
    "Warning signs include someone saying they would be better off dead",  # prevention work
    "this commute is making me want to die lol",                 # hyperbole about an irritant
])
def test_stories_lyrics_prevention_and_hyperbole_are_not_a_crisis(text):
    assert all(h.level == CONCERN for h in text_hits(text)), text_hits(text)


def test_a_preposition_object_is_not_the_subject():
    """'for my wife' is not who is speaking: the poster is."""
    assert hits("The best I can do for my wife is to stop being her burden for good")["death_as_gift"][1] == "self"


def test_ordinals_and_units_are_not_leetspeak():
    assert variants("See you on the 14th, I took 40mg") == ["see you on the 14th, i took 40mg"]


@pytest.mark.parametrize("text", ["1" * 4000, "suicide " * 500, "not " * 1000, "a*" * 2000, "k1 " * 1300,
                                  "i want to kill myself. " * 170, "\u200b" * 4000])
def test_adversarial_text_is_screened_quickly(text):
    """No catastrophic backtracking or quadratic work on a 4,000-character post (the service's limit)."""
    import time

    t0 = time.perf_counter()
    text_hits(text)
    assert time.perf_counter() - t0 < 1.0  # ~20 ms here; generous for a loaded CI machine
