import pytest

from mental_r1.data import list_datasets, load_imhi_csv
from mental_r1.tasks import (
    IMHI_DATASETS,
    TASKS,
    get_task,
    resolve_task_ids,
    task_for_question,
    tasks_of_dataset,
)


def test_registry_covers_the_eight_imhi_datasets():
    assert {t.dataset for t in TASKS.values()} == set(IMHI_DATASETS)
    assert len(tasks_of_dataset("MultiWD")) == 6 and len(tasks_of_dataset("Irf")) == 2
    assert get_task("SAD").label_names[-1] == "other stress causes"
    assert len(get_task("SAD").labels) == 9 and len(get_task("CAMS").labels) == 6
    assert get_task("t-sid").label_names == ("no mental disorders", "suicide or self-harm tendency",
                                             "depression", "PTSD")


def test_labels_unique_within_each_task():
    for t in TASKS.values():
        assert len(set(t.label_names)) == len(t.labels), t.id
        assert len({lab.text for lab in t.labels}) == len(t.labels), t.id


def test_unknown_task_message_lists_known_ones():
    with pytest.raises(KeyError, match="known tasks: DR"):
        get_task("nope")
    with pytest.raises(KeyError, match="no task with question"):
        task_for_question("DR", "Is this a question?")


def test_gold_label_mapping():
    t = get_task("DR")
    assert t.gold_label("No, the poster does not suffer from depression. Reasoning: calm.") == "no"
    assert t.gold_label("Yes, the poster suffers from depression.Reasoning: x") == "yes"
    with pytest.raises(KeyError, match="matches 0 labels"):
        t.gold_label("Maybe. Reasoning: unclear")


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_every_imhi_row_maps_to_exactly_one_label(data_dir, split):
    names = list_datasets(data_dir, split)
    assert names, split
    for name in names:
        rows = load_imhi_csv(data_dir / split / f"{name}.csv")
        assert rows, name
        for ex in rows:
            assert ex.dataset == name and ex.label in ex.task.label_names
            # exactly one label sentence equals the gold head
            head = ex.task.label(ex.label).text
            assert sum(lab.text == head for lab in ex.task.labels) == 1
    if split == "test":
        assert sorted(names) == sorted(IMHI_DATASETS)


def test_resolve_task_ids_expands_dataset_ids_and_reports_the_rest():
    pb, tb = "Irf:perceived_burdensomeness", "Irf:thwarted_belongingness"
    assert resolve_task_ids(["Irf"]) == ([tb, pb], [])
    assert resolve_task_ids([pb, "Irf", "DR", "DR"]) == ([pb, tb, "DR"], [])  # each task once, first order
    assert resolve_task_ids(["SAD"]) == (["SAD"], [])  # a task id that is also its dataset's id
    assert resolve_task_ids(["irf", "DR", "Irf:x"]) == (["DR"], ["irf", "Irf:x"])
    # every dataset id names exactly its tasks
    for ds in IMHI_DATASETS:
        assert resolve_task_ids([ds])[0] == [t.id for t in tasks_of_dataset(ds)]
