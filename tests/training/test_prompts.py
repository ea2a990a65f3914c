from mental_r1.contract import PREFILL
from mental_r1.data import Example
from mental_r1.tasks import get_task
from training.prompts import prompt_for, rl_rows, select_examples

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
