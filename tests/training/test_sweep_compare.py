import json
import math

import pytest

from training.sweep_compare import compare, main, paired_bootstrap


def lp(p_yes: float) -> dict[str, float]:
    return {"yes": math.log(p_yes), "no": math.log(1 - p_yes)}


def row(dataset: str, gold: str, direct_yes: float, greedy_yes: float) -> dict:
    return {"dataset": dataset, "task": dataset, "gold": gold, "direct": lp(direct_yes),
            "reasonings": [{"scores": lp(greedy_yes), "tokens": 90, "reached": True}]}


def rows(direct_right: bool, n: int = 20) -> list[dict]:
    """n rows per dataset, half "yes": the greedy reasoning is right on 3 of 4 rows; the direct decision is right on
    every row, or on none."""
    out = []
    for ds in ("DR", "dreaddit"):
        for i in range(n):
            gold = "yes" if i % 2 else "no"
            p_gold = 0.9 if direct_right else 0.1
            greedy_gold = 0.8 if i % 4 else 0.3
            out.append(row(ds, gold, p_gold if gold == "yes" else 1 - p_gold,
                           greedy_gold if gold == "yes" else 1 - greedy_gold))
    return out


def test_identical_predictions_differ_by_nothing_on_every_draw():
    gold = {"DR": ["yes", "no", "yes", "no"]}
    pred = {"DR": ["yes", "yes", "no", "no"]}
    out = paired_bootstrap(gold, pred, pred, draws=50)
    assert out["DR"] == {"delta": 0.0, "lo": 0.0, "hi": 0.0} and out["average"]["delta"] == 0.0


def test_a_better_model_gets_a_positive_difference_and_an_interval_above_zero():
    gold = {"DR": ["yes", "no"] * 30, "SAD": ["work", "school", "family"] * 20}
    a = {"DR": ["yes"] * 60, "SAD": ["work"] * 60}  # the majority answer
    b = {"DR": gold["DR"][:50] + ["no"] * 10, "SAD": list(gold["SAD"])}
    out = paired_bootstrap(gold, a, b, draws=200, seed=1)
    assert out["SAD"]["delta"] == pytest.approx(100 - 100 * (1 / 3) * (2 * (1 / 3) / (1 + 1 / 3)))
    assert 0 < out["DR"]["lo"] <= out["DR"]["delta"] <= out["DR"]["hi"]
    assert out["average"]["delta"] == pytest.approx((out["DR"]["delta"] + out["SAD"]["delta"]) / 2)
    assert out["average"]["lo"] > 0
    assert paired_bootstrap(gold, a, b, draws=200, seed=1) == out  # seeded
    assert paired_bootstrap(gold, b, a, draws=200, seed=1)["DR"]["delta"] == -out["DR"]["delta"]


def test_bootstrap_refuses_predictions_that_do_not_line_up():
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap({"DR": ["yes", "no"]}, {"DR": ["yes"]}, {"DR": ["yes", "no"]})
    with pytest.raises(ValueError, match="same datasets"):
        paired_bootstrap({"DR": ["yes"]}, {"DR": ["yes"]}, {"SAD": ["yes"]})


def test_compare_separates_the_decisions_and_chooses_each_models_rule():
    a, b = rows(direct_right=False), rows(direct_right=True)
    out = compare(a, b, samples=0, min_agreement=0.0, min_gain=1.0, f1_tolerance=0.0, draws=100, seed=0)
    d = out["decisions"]
    assert d["greedy"]["average"]["delta"] == 0.0  # the same reasonings
    assert d["direct"]["average"]["a"] == 0.0 and d["direct"]["average"]["b"] == 100.0
    assert d["direct"]["average"]["lo"] == 100.0
    assert out["chosen"][1]["DR"]["direct_weight"] > 0  # B's direct decision is right on every row (the smallest
    # weight that makes every row right wins the tie)
    assert out["chosen"][0]["DR"]["direct_weight"] == 0.0  # A's is always wrong: the reasoning decides
    assert d["chosen"]["DR"]["b"] == 100.0 and d["chosen"]["DR"]["a"] == d["greedy"]["DR"]["a"]
    assert out["rows"] == {"DR": 20, "dreaddit": 20} and "lo" not in d["rules (mean)"]["DR"]


def test_compare_refuses_different_selections():
    a = rows(direct_right=True)
    b = [dict(r) for r in a]
    b[3] = {**b[3], "gold": "yes" if b[3]["gold"] == "no" else "no"}
    with pytest.raises(ValueError, match="row 3 differs"):
        compare(a, b, 0, 0.9, 1.0, 0.0, 10, 0)
    with pytest.raises(ValueError, match="40 and 39 rows"):
        compare(a, a[:-1], 0, 0.9, 1.0, 0.0, 10, 0)


def test_cli_writes_the_table_and_its_numbers(tmp_path, capsys):
    paths = []
    for name, right in (("a", False), ("b", True)):
        p = tmp_path / f"{name}_candidates.json"
        p.write_text(json.dumps({"samples": 0, "rows": rows(direct_right=right)}))
        paths.append(str(p))
    out = tmp_path / "cmp.md"
    main([*paths, "--names", "old,new", "--draws", "50", "--output", str(out)])
    md = out.read_text()
    assert "| direct | **average** | 40 | 0.0 | 100.0 | **+100.0** |" in md and "new − old" in md
    assert json.loads(out.with_suffix(".json").read_text())["names"] == ["old", "new"]
    assert md.strip() in capsys.readouterr().out
    three = tmp_path / "three.json"
    three.write_text(json.dumps({"samples": 3, "rows": []}))
    with pytest.raises(SystemExit, match="same --samples"):
        main([paths[0], str(three)])
    sweep_json = tmp_path / "a_sweep.json"
    sweep_json.write_text(json.dumps({"chosen": {}, "table": {}}))
    with pytest.raises(SystemExit, match="holds no 'rows'"):
        main([paths[0], str(sweep_json)])
    with pytest.raises(SystemExit, match="two decision_sweep.py _candidates.json"):
        main([paths[0], str(tmp_path / "missing.json")])
