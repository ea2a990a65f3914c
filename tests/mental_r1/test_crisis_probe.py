"""The crisis probe (crisis_probe.jsonl, written for docs/crisis-taxonomy.md) against the text screen.

Targets (issue 21): risk posts flagged (resources attached) on >= 95 % and at level crisis on >= 80 %; posts
that share their words without risk at level crisis on <= 10 %. The lexicon was tuned on the dev part only;
the held-out part says whether it generalised: there the figures must not fall below what was measured when
the lexicon was last changed (docs/evaluation.md, "Crisis screen"; flagged 0.94, short of the 0.95 target).
`python training/screen_probe.py` prints the table per category and part.
"""

from collections import Counter

import pytest

from training.screen_probe import PARTS, TARGETS, load_probe, markdown, measure, part

POSTS = load_probe()
RISK_REGISTERS = {"plain", "slang", "tweet", "long"}
CONTROL_KINDS = {"grief", "hyperbole", "fiction", "other", "past", "prevention", "medical"}
HELD_OUT_FLAGGED_FLOOR = 0.94  # measured; the target is 0.95


@pytest.fixture(scope="module")
def results():
    return measure(POSTS)


def test_the_probe_covers_every_category_in_every_register():
    assert len({p.text for p in POSTS}) == len(POSTS)
    for category in {p.category for p in POSTS}:
        risk = [p for p in POSTS if p.category == category and p.risk]
        safe = [p for p in POSTS if p.category == category and not p.risk]
        assert len(risk) >= 10 and len(safe) >= 10, category
        assert {p.kind for p in risk} == RISK_REGISTERS, category
        assert len({p.kind for p in safe} & CONTROL_KINDS) >= 5, category
        assert all(len(p.text) > 350 for p in risk if p.kind == "long"), category  # the signal buried mid-text


def test_the_split_is_fixed_by_the_text_and_about_half():
    assert part("a post") == part("a post")
    share = Counter(p.part for p in POSTS)["dev"] / len(POSTS)
    assert 0.4 < share < 0.6


def _check(r: dict, flagged: float) -> None:
    assert r["risk"]["flagged_rate"] >= flagged, r
    assert r["risk"]["crisis_rate"] >= TARGETS["risk_crisis"], r
    assert r["control"]["crisis_rate"] <= TARGETS["control_crisis"], r


def test_the_targets_on_the_whole_probe():
    r = measure([p for p in POSTS])  # both parts together
    risk = sum(r[p]["all"]["risk"]["flagged"] for p in PARTS) / sum(r[p]["all"]["risk"]["n"] for p in PARTS)
    crisis = sum(r[p]["all"]["risk"]["crisis"] for p in PARTS) / sum(r[p]["all"]["risk"]["n"] for p in PARTS)
    false = sum(r[p]["all"]["control"]["crisis"] for p in PARTS) / sum(r[p]["all"]["control"]["n"] for p in PARTS)
    assert risk >= TARGETS["risk_flagged"] and crisis >= TARGETS["risk_crisis"] and false <= TARGETS["control_crisis"]


def test_the_targets_on_the_dev_part(results):
    _check(results["dev"]["all"], TARGETS["risk_flagged"])


def test_the_held_out_part_does_not_fall_below_its_measurement(results):
    _check(results["held-out"]["all"], HELD_OUT_FLAGGED_FLOOR)


def test_no_category_is_left_behind(results):
    """Per category, both parts together: most risk posts at crisis, few safe posts at crisis."""
    for category in (c for c in results["dev"] if c != "all"):
        risk = [results[p][category]["risk"] for p in PARTS]
        safe = [results[p][category]["control"] for p in PARTS]
        assert sum(r["crisis"] for r in risk) / sum(r["n"] for r in risk) >= 0.75, category
        assert sum(r["crisis"] for r in safe) / sum(r["n"] for r in safe) <= 0.2, category


def test_the_table_has_every_category_and_part(results):
    table = markdown(results)
    for category in {p.category for p in POSTS}:
        assert all(f"| {category} | {p} |" in table for p in PARTS)
