import csv

import pytest

from mental_r1.data import (
    DataError,
    carved_split,
    custom_task,
    is_held_out,
    list_datasets,
    load_imhi_csv,
    load_paper_csv,
    load_split,
    screen_part,
)

OPTIONS_PROMPT = ('Determine the intensity of loneliness.\n- Respond with one of the following options:\n'
                  '  - "[1-2]"\n  - "[2-3]"\n  - "[3-4]"\nStatement: ')


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_imhi_loader_reads_post_label_and_explanation(data_dir):
    ex = load_imhi_csv(data_dir / "train" / "DR.csv")
    assert len(ex) == 1003
    assert sum(e.label == "yes" for e in ex) == 801
    assert not ex[0].text.startswith("Consider this post")
    assert ex[0].explanation and "Reasoning" not in ex[0].explanation


def test_load_split_mixes_datasets(data_dir):
    ex = load_split(data_dir, "val", ["DR", "dreaddit", "SAD"])
    assert {e.dataset for e in ex} == {"DR", "dreaddit", "SAD"}
    assert len(ex) == 430 + 300 + 616
    assert len(load_split(data_dir, "test", ["CAMS"], carve=False)) == 315


def test_test_only_datasets_are_carved_into_train_val_and_an_untouched_test_part(data_dir):
    whole = load_split(data_dir, "test", ["CAMS", "loneliness", "t-sid"], carve=False)
    parts = {s: load_split(data_dir, s, ["CAMS", "loneliness", "t-sid"]) for s in ("train", "val", "test")}
    assert sum(map(len, parts.values())) == len(whole)
    texts = {s: {(e.dataset, e.text) for e in rows} for s, rows in parts.items()}
    assert not texts["train"] & texts["val"] and not texts["train"] & texts["test"] and not texts["val"] & texts["test"]
    for name in ("CAMS", "loneliness", "t-sid"):
        n = sum(e.dataset == name for e in whole)
        share = {s: sum(e.dataset == name for e in rows) / n for s, rows in parts.items()}
        assert all(share[s] > 0.1 for s in share), (name, share)
    # t-sid's untouched part is exactly the crisis screen's part B
    assert {e.text for e in parts["test"] if e.dataset == "t-sid"} == \
        {e.text for e in whole if e.dataset == "t-sid" and screen_part(e.text) == "B"}
    assert all(carved_split(e) == "test" for e in parts["test"])
    # the five datasets with training data are not carved: their test halves stay whole
    assert len(load_split(data_dir, "test", ["DR"])) == len(load_split(data_dir, "test", ["DR"], carve=False))
    assert {e.dataset for e in load_split(data_dir, "train")} == {
        "DR", "dreaddit", "SAD", "Irf", "MultiWD", "CAMS", "loneliness", "t-sid"}


def test_datasets_without_val_split_hold_back_a_fixed_slice_of_train(data_dir):
    val = load_split(data_dir, "val", carve=False)
    assert {e.dataset for e in val} == {"DR", "dreaddit", "SAD", "Irf", "MultiWD"}
    train = load_split(data_dir, "train", ["Irf", "MultiWD"])
    held = [e for e in val if e.dataset in ("Irf", "MultiWD")]
    full = load_imhi_csv(data_dir / "train" / "Irf.csv") + load_imhi_csv(data_dir / "train" / "MultiWD.csv")
    assert len(train) + len(held) == len(full)
    assert 0.15 < len(held) / len(full) < 0.25  # one in five
    assert not {e.text for e in held} & {e.text for e in train}  # a post is never on both sides
    assert all(is_held_out(e) for e in held) and not any(is_held_out(e) for e in train)
    # datasets with their own val split keep all training rows
    assert len(load_split(data_dir, "train", ["DR"])) == 1003


def test_folder_without_the_layout_fails_naming_it(data_dir):
    with pytest.raises(DataError, match=r"no test data found; expected the IMHI layout .*not ../shared/data/imhi/test"):
        load_split(data_dir / "test", "test")


def test_imhi_bad_label_names_file_and_row(tmp_path):
    f = write_csv(tmp_path / "test" / "DR.csv", ["query", "gpt-3.5-turbo"], [
        ['Consider this post: "fine" Question: Does the poster suffer from depression?', "Yes, the poster suffers from depression. Reasoning: x"],
        ['Consider this post: "hm" Question: Does the poster suffer from depression?', "Perhaps. Reasoning: y"],
    ])
    with pytest.raises(DataError, match=r"DR.csv: row 2: answer 'perhaps' matches 0 labels"):
        load_imhi_csv(f)


def test_imhi_empty_post_and_missing_column(tmp_path):
    f = write_csv(tmp_path / "DR.csv", ["query", "gpt-3.5-turbo"],
                  [['Consider this post: "  " Question: Does the poster suffer from depression?', "No."]])
    with pytest.raises(DataError, match="row 1: query is empty"):
        load_imhi_csv(f)
    g = write_csv(tmp_path / "x" / "DR.csv", ["query"], [["q"]])
    with pytest.raises(DataError, match="missing column"):
        load_imhi_csv(g)


def test_bad_encoding_names_the_line(tmp_path):
    f = tmp_path / "DR.csv"
    f.write_bytes(b'query,gpt-3.5-turbo\n"Consider this post: \xff\xfe" Question: x",y\n')
    with pytest.raises(DataError, match="line 2 is not valid UTF-8"):
        load_imhi_csv(f)


def test_unknown_imhi_dataset(tmp_path):
    f = write_csv(tmp_path / "Other.csv", ["query", "gpt-3.5-turbo"], [])
    with pytest.raises(DataError, match="unknown IMHI dataset 'Other'"):
        load_imhi_csv(f)


def make_paper_dataset(root):
    d = root / "LID"
    write_csv(d / "train_clean.csv", ["text", "label", "mental_prompt"],
              [["so alone", "[3-4]", OPTIONS_PROMPT], ["fine today", "[1-2]", OPTIONS_PROMPT]])
    write_csv(d / "dev_clean.csv", ["text", "label", "mental_prompt"], [["meh", "[2-3]", OPTIONS_PROMPT]])
    write_csv(d / "test_clean.csv", ["text", "label", "mental_prompt"], [["nobody calls", "[3-4]", OPTIONS_PROMPT]])
    return d


def test_paper_format_becomes_a_task(tmp_path):
    make_paper_dataset(tmp_path)
    assert list_datasets(tmp_path, "train") == ["LID"]
    ex = load_split(tmp_path, "train")
    assert [e.label for e in ex] == ["[3-4]", "[1-2]"]
    task = ex[0].task
    assert task.label_names == ("[1-2]", "[2-3]", "[3-4]")  # options read from mental_prompt
    assert task.question == "Determine the intensity of loneliness."
    assert [e.text for e in load_split(tmp_path, "val")] == ["meh"]  # dev_clean.csv serves as val


def test_paper_format_unknown_label_and_empty_text(tmp_path):
    d = make_paper_dataset(tmp_path)
    task = custom_task("LID", [d / "train_clean.csv"])
    bad = write_csv(tmp_path / "bad.csv", ["text", "label", "mental_prompt"],
                    [["ok", "[1-2]", OPTIONS_PROMPT], ["x", "[9-9]", OPTIONS_PROMPT]])
    with pytest.raises(DataError, match=r"bad.csv: row 2: unknown label '\[9-9\]'"):
        load_paper_csv(bad, task)
    empty = write_csv(tmp_path / "empty.csv", ["text", "label", "mental_prompt"], [["  ", "[1-2]", OPTIONS_PROMPT]])
    with pytest.raises(DataError, match="empty.csv: row 1: empty text"):
        load_paper_csv(empty, task)


def test_load_split_errors(tmp_path, data_dir):
    with pytest.raises(DataError, match="does not exist; pass --data-dir"):
        load_split(tmp_path / "nope", "train")
    with pytest.raises(DataError, match=r"no train data for \['CAMS'\]"):
        load_split(data_dir, "train", ["CAMS"], carve=False)
    with pytest.raises(DataError, match="unknown split"):
        load_split(data_dir, "dev")
