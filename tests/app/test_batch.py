"""The engine-free part of batch assessment: reading rows, one line per row in order, resume, summary."""

from __future__ import annotations

import asyncio
import io
import json
import random

import pytest

from app.batch import (
    BatchError,
    Row,
    check_resumable,
    format_summary,
    load_done,
    read_rows,
    run_rows,
    summarize,
)


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_carry_the_id_and_keep_quoted_newlines(tmp_path):
    f = write(tmp_path / "in.csv", '\ufeffid,text,other\np1,"first, with comma",x\np2,"two\nlines",y\np3,,z\n')
    rows = list(read_rows(f))
    assert [(r.index, r.id, r.text, r.problem) for r in rows] == [
        (0, "p1", "first, with comma", None), (1, "p2", "two\nlines", None), (2, "p3", "", None)]


def test_csv_without_an_id_column_uses_the_row_number_and_another_text_column(tmp_path):
    f = write(tmp_path / "in.csv", "post\nhello\nworld\n")
    assert [(r.index, r.id, r.text) for r in read_rows(f, text_column="post")] == [(0, 0, "hello"), (1, 1, "world")]


def test_csv_short_row_is_a_bad_row_not_a_crash(tmp_path):
    f = write(tmp_path / "in.csv", "id,other,text\na,1,ok\nb,2\n")
    rows = list(read_rows(f))
    assert rows[1].id == "b" and rows[1].text is None and "fewer fields" in rows[1].problem


def test_csv_missing_text_column_names_the_columns_and_the_flag(tmp_path):
    f = write(tmp_path / "in.csv", "id,body\n1,x\n")
    with pytest.raises(BatchError, match=r"no column 'text' \(its columns: id, body\).*--text-column"):
        list(read_rows(f))


def test_jsonl_rows_bad_lines_become_bad_rows(tmp_path):
    f = write(tmp_path / "in.jsonl", '{"id": 7, "text": "a"}\n\n{"text": "b"}\nnot json\n[1]\n{"id": "x", "text": 3}\n')
    rows = list(read_rows(f))
    assert [(r.index, r.id, r.text) for r in rows] == [(0, 7, "a"), (1, 1, "b"), (2, 2, None), (3, 3, None),
                                                        (4, "x", None)]
    assert "line 4 is not a JSON object" in rows[2].problem and "line 5" in rows[3].problem
    assert "no string field 'text'" in rows[4].problem


@pytest.mark.parametrize("name, content, fragment", [
    ("in.xlsx", "x", "give a .csv file"),
    ("missing.csv", None, "no such file"),
    ("latin1.csv", b"text\ncaf\xe9\n", "not UTF-8"),
])
def test_unreadable_inputs_say_what_to_do(tmp_path, name, content, fragment):
    f = tmp_path / name
    if isinstance(content, bytes):
        f.write_bytes(content)
    elif content is not None:
        f.write_text(content)
    with pytest.raises(BatchError, match=fragment):
        list(read_rows(f))


def fake_result(row: Row) -> dict:
    label = "yes" if "sad" in row.text else "no"
    return {"assessments": [{"task": "DR", "label": label, "format_valid": True}],
            "safety": {"crisis": "die" in row.text, "signals": ["suicidal_ideation"] if "die" in row.text else []},
            "model": {"name": "m", "version": "1"}}


def make_assess(delay=True, fail_at=None, seen=None):
    rng = random.Random(0)
    state = {"running": 0, "max": 0}

    async def assess(row: Row) -> dict:
        if fail_at is not None and row.index == fail_at:
            raise KeyboardInterrupt  # an interruption in the middle of the run
        state["running"] += 1
        state["max"] = max(state["max"], state["running"])
        if seen is not None:
            seen.append(row.index)
        if delay:
            await asyncio.sleep(rng.random() / 200)  # finish out of order
        state["running"] -= 1
        if not row.text.strip():
            return {"error": {"type": "invalid_request", "message": "text: text is empty or only whitespace"}}
        return fake_result(row)

    return assess, state


def posts(n: int) -> list[Row]:
    texts = ["sad day", "fine", "", "I want to die", "sad", "ok"]
    return [Row(i, f"p{i}", texts[i % len(texts)]) for i in range(n)]


def run(rows, assess, out, done=None, **kw):
    with out.open("a", encoding="utf-8") as f:
        return asyncio.run(run_rows(rows, assess, f, done or {}, **kw))


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_one_line_per_row_in_input_order_with_bounded_concurrency(tmp_path):
    out = tmp_path / "out.jsonl"
    assess, state = make_assess()
    rows = posts(40) + [Row(40, "bad", None, "line 42 is not a JSON object")]
    assert run(rows, assess, out, concurrency=3) == 41
    got = lines(out)
    assert [g["row"] for g in got] == list(range(41)) and [g["id"] for g in got] == [f"p{i}" for i in range(40)] + ["bad"]
    assert state["max"] == 3  # the engine is kept busy, never over the limit
    assert got[2]["error"]["message"] == "text: text is empty or only whitespace"
    assert got[40]["error"] == {"type": "invalid_request", "message": "line 42 is not a JSON object"}
    assert got[0]["assessments"][0]["label"] == "yes" and "text" not in got[0]


def test_include_text_copies_the_text(tmp_path):
    out = tmp_path / "out.jsonl"
    run(posts(2), make_assess()[0], out, concurrency=2, include_text=True)
    assert [g["text"] for g in lines(out)] == ["sad day", "fine"]
    assert list(lines(out)[0])[:3] == ["row", "id", "text"]


def test_interrupted_run_resumes_without_redoing_or_duplicating_rows(tmp_path):
    reference = tmp_path / "ref.jsonl"
    run(posts(30), make_assess()[0], reference, concurrency=4)

    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run(posts(30), make_assess(fail_at=17)[0], out, concurrency=4)
    before = out.read_bytes()
    assert 0 < len(before.splitlines()) <= 17
    with out.open("ab") as f:  # the interruption cut the last line short
        f.write(b'{"row": 99, "id": "p9')

    done = load_done(out)
    assert out.read_bytes() == before  # the cut line is gone
    seen: list[int] = []
    run(posts(30), make_assess(seen=seen)[0], out, done, concurrency=4)
    assert not set(seen) & set(done)  # nothing done twice
    assert out.read_bytes().startswith(before)
    assert lines(out) == lines(reference)  # one line per row, in order, as an uninterrupted run


def test_resume_refuses_another_input_or_other_tasks_or_model(tmp_path):
    out = tmp_path / "out.jsonl"
    run(posts(3), make_assess()[0], out, concurrency=2)
    done = load_done(out)
    other = [Row(0, "different", "x")]
    with pytest.raises(BatchError, match="belongs to another input"):
        run(other, make_assess()[0], out, done, concurrency=1)
    check_resumable(out, done, ["DR"], {"name": "m", "version": "1"})
    with pytest.raises(BatchError, match="tasks DR, not DR,t-sid"):
        check_resumable(out, done, ["DR", "t-sid"], None)
    with pytest.raises(BatchError, match="written by model"):
        check_resumable(out, done, ["DR"], {"name": "m", "version": "2"})


def test_a_foreign_file_is_not_appended_to(tmp_path):
    out = write(tmp_path / "out.jsonl", '{"row": 0}\nsomething else\n{"row": 2}\n')
    with pytest.raises(BatchError, match="line 2 is not a line of `mental-r1 assess` output"):
        load_done(out)
    assert load_done(tmp_path / "new.jsonl") == {}


def test_summary_counts_labels_crisis_and_format_validity():
    def line(labels, crisis=False, valid=True, sets=None):
        return {"assessments": [{"task": t, "label": lab, "format_valid": valid, "label_set": (sets or {}).get(t, [lab])}
                                for t, lab in labels],
                "safety": {"crisis": crisis, "signals": ["self_harm"] if crisis else []}}

    s = summarize([
        line([("DR", "yes"), ("t-sid", "depression")]),
        line([("DR", "no"), ("t-sid", "suicide or self-harm tendency")], crisis=True, valid=False,
             sets={"DR": ["no", "yes"]}),
        line([("DR", "yes"), ("t-sid", "depression")]),
        {"row": 3, "error": {"type": "invalid_request", "message": "text: text is empty"}},
    ])
    assert s["rows"] == 4 and s["assessed"] == 3 and s["errors"] == {"invalid_request": 1}
    assert s["tasks"]["DR"] == {"n": 3, "labels": {"yes": 2, "no": 1}, "format_valid_rate": pytest.approx(2 / 3),
                                "uncertain": 1}  # one label set of two labels
    assert s["tasks"]["t-sid"]["uncertain"] == 0
    assert s["crisis"] == 1 and s["signals"] == {"self_harm": 1}
    assert s["format_valid_rate"] == pytest.approx(4 / 6)
    text = format_summary(s)
    assert "rows 4: 3 assessed, 1 errors (invalid_request 1)" in text
    assert "crisis flags: 1 (self_harm 1)" in text and "format valid: 66.7 % of 6 task assessments" in text
    assert "DR (n=3, format valid 66.7 %, uncertain 1): yes 2, no 1" in text
    assert "t-sid (n=3, format valid 66.7 %): depression 2" in text  # none uncertain: not mentioned


def test_summary_of_signals_given_as_objects():
    # a safety block whose signals carry their source is summarised by category
    line = {"assessments": [], "safety": {"crisis": True, "signals": [{"category": "self_harm", "source": "text"}]}}
    assert summarize([line])["signals"] == {"self_harm": 1}


def test_output_is_valid_json_lines_with_unicode(tmp_path):
    out = tmp_path / "out.jsonl"
    run([Row(0, "ü", "sad \u2028 ü")], make_assess(delay=False)[0], out, concurrency=1, include_text=True)
    assert len(out.read_bytes().split(b"\n")) == 2 and lines(out)[0]["text"] == "sad \u2028 ü"
    assert io.StringIO(out.read_text()).read().count("\n") == 1
