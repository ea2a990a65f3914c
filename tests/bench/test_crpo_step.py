"""bench/crpo_step.py: variants and the summary (the timed runs themselves are a benchmark, not a test)."""

import pytest

from bench.crpo_step import summarize, variant


def test_variant_is_an_algorithm_with_config_overrides():
    assert variant("grpo") == ("grpo", [])
    assert variant("crpo:label_scoring=policy;beta=0") == ("crpo", ["--label_scoring", "policy", "--beta", "0"])
    with pytest.raises(SystemExit, match="key=value"):
        variant("crpo:label_scoring")


def test_summary_drops_warm_up_and_reports_each_variant():
    def run(kind, steps, gens, rewards):
        return {"kind": kind, "step_seconds": steps, "gen_calls": [{"seconds": g, "tokens": 100} for g in gens],
                "reward_calls": rewards}

    runs = [run("crpo", [50, 20, 22], [30, 8, 8], [9, 1, 3]), run("grpo", [40, 20, 20], [30, 8, 8], [9, 2, 2])]
    out = summarize(runs, ["crpo", "grpo"])
    assert out["crpo"]["median_step_seconds"] == 21 and out["crpo"]["timed_steps"] == 2  # 50 s warm-up dropped
    assert out["crpo"]["median_reward_seconds"] == 2 and out["crpo"]["median_rest_seconds"] == 13
    assert out["crpo"]["rollout_tokens_per_second"] == pytest.approx(200 / 16)
    assert out["ratio_crpo_over_grpo"] == pytest.approx(21 / 20)
