from mental_r1.contract import PREFILL
from mental_r1.data import Example
from mental_r1.tasks import get_task
from training.prompts import prompt_for, rl_rows, select_continuation, select_examples

DR = get_task("DR")
SAD = get_task("SAD")


def test_long_post_is_cut_to_fit(tokenizer):
    ex = Example("DR", DR, "word " * 2000, "yes")
    prompt = prompt_for(tokenizer, ex, 400)
    assert prompt.endswith(PREFILL)
    assert 380 <= len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) <= 400
    short = Example("DR", DR, "A short post.", "yes")
    assert '"A short post."' in prompt_for(tokenizer, short, 400)


def test_rows_carry_reward_columns(tokenizer):
    row = rl_rows(tokenizer, [Example("SAD", SAD, "Exams.", "school")], 512)[0]
    assert row["dataset"] == "SAD" and row["task"] == "SAD" and row["label"] == "school"
    assert row["options"] == list(SAD.label_names)


def test_select_examples_is_seeded_and_per_dataset():
    ex = [Example("DR", DR, f"d{i}", "yes") for i in range(10)] + [Example("SAD", SAD, f"s{i}", "work")
                                                                   for i in range(3)]
    a, b = select_examples(ex, 4, seed=1), select_examples(ex, 4, seed=1)
    assert [e.text for e in a] == [e.text for e in b]
    assert sum(e.dataset == "DR" for e in a) == 4 and sum(e.dataset == "SAD" for e in a) == 3
    assert len(select_examples(ex, None, seed=1)) == 13


def test_balanced_selection_spreads_over_tasks_and_labels():
    irf_pb, irf_tb = get_task("Irf:perceived_burdensomeness"), get_task("Irf:thwarted_belongingness")
    ex = ([Example("DR", DR, f"y{i}", "yes") for i in range(50)] + [Example("DR", DR, f"n{i}", "no") for i in range(3)]
          + [Example("Irf", irf_pb, f"p{i}", "yes") for i in range(30)]
          + [Example("Irf", irf_tb, f"t{i}", "no") for i in range(30)])
    sel = select_examples(ex, 10, seed=0, balanced=True)
    dr = [e.label for e in sel if e.dataset == "DR"]
    assert dr.count("no") == 3 and dr.count("yes") == 7  # the rare class takes all it has, the rest fills up
    irf = [e.task.id for e in sel if e.dataset == "Irf"]
    assert irf.count(irf_pb.id) == 5 and irf.count(irf_tb.id) == 5
    assert len({e.text for e in sel}) == len(sel) == 20
    # unbalanced selection keeps the natural proportions (seeded)
    assert [e.text for e in select_examples(ex, 10, seed=0)] == [e.text for e in select_examples(ex, 10, seed=0)]


def test_a_continuation_takes_new_examples_first_and_tops_up_small_datasets_with_seen_ones():
    ex = ([Example("DR", DR, f"y{i}", "yes") for i in range(20)] + [Example("DR", DR, f"n{i}", "no") for i in range(20)]
          + [Example("SAD", SAD, f"s{i}", "work") for i in range(5)])
    prior = select_examples(ex, 10, seed=42, balanced=True)
    cont = select_continuation(ex, 10, seed=7, balanced=True, prior_per_dataset=10, prior_seed=42)
    seen = {e.text for e in prior}
    dr = [e for e in cont if e.dataset == "DR"]
    assert len(dr) == 10 and not seen & {e.text for e in dr}  # DR has 30 unseen: all new
    assert sorted(e.label for e in dr) == ["no"] * 5 + ["yes"] * 5  # still balanced
    sad = [e.text for e in cont if e.dataset == "SAD"]
    assert sorted(sad) == sorted(f"s{i}" for i in range(5))  # all 5 seen before: replayed, none twice
    assert [e.text for e in cont] == [e.text for e in select_continuation(ex, 10, 7, True, 10, 42)]  # seeded
    # more new examples asked for than there are: the unseen ones, then seen ones up to the quota
    big = select_continuation(ex, 35, seed=7, balanced=True, prior_per_dataset=10, prior_seed=42)
    dr_big = [e.text for e in big if e.dataset == "DR"]
    assert len(dr_big) == len(set(dr_big)) == 35 and len(set(dr_big) - seen) == 30
