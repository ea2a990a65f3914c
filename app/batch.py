"""Assessments of a whole file: reading the rows, the output file and its resume, the summary.

The engine-free part of `mental-r1 assess` (app/cli.py): a row is assessed by an `async (Row) -> dict`
function that returns the /assess response object or `{"error": {"type", "message"}}`, in-process or
over HTTP, so everything here is tested without a model.

Output: one JSON line per input row, written in input order as rows finish and flushed line by line:

    {"row": 0, "id": "p1", "assessments": [...], "safety": {...}, "model": {...}, "usage": {...}, "latency_ms": …}
    {"row": 1, "id": "p2", "error": {"type": "invalid_request", "message": "text: text is empty or only whitespace"}}

`row` is the row's 0-based position among the input's data rows, `id` its id column (the row number when
the input has none); the input text only with --include-text. Resume: rows that already have a line are
skipped, and a last line cut short by an interruption is dropped and its row redone, so an interrupted
run, run again, ends with exactly one line per row.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# characters that str.splitlines() (and so many readers of "lines") break on but json.dumps leaves raw
_LINE_BREAKS = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"})


class BatchError(Exception):
    """A problem with the whole run (not one row); the message says how to fix it."""


@dataclass(frozen=True)
class Row:
    index: int
    id: Any
    text: str | None
    problem: str | None = None  # why the row cannot be assessed at all (never quotes its text)


def read_rows(path: Path, text_column: str = "text", id_column: str = "id") -> Iterator[Row]:
    """The rows of a CSV (with a header) or JSONL file, streamed; malformed rows come back with a problem."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise BatchError(f"{path}: unknown input format {path.suffix!r}; give a .csv file (with a header row) or "
                         "a .jsonl file (one JSON object per line)")
    if not path.is_file():
        raise BatchError(f"{path}: no such file")
    rows = _csv_rows if kind == "csv" else _jsonl_rows
    try:
        yield from rows(path, text_column, id_column)
    except UnicodeDecodeError as e:
        raise BatchError(f"{path} is not UTF-8 text (byte {e.start}); save it as UTF-8 and run again") from None


def _csv_rows(path: Path, text_column: str, id_column: str) -> Iterator[Row]:
    csv.field_size_limit(2**31 - 1)  # a long post is a row error (too long), not a csv.Error for the whole file
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        if text_column not in columns:
            raise BatchError(f"{path} has no column {text_column!r} (its columns: {', '.join(columns) or 'none'}); "
                             "name the text column with --text-column")
        has_id = id_column in columns
        for i, rec in enumerate(reader):
            text = rec.get(text_column)
            yield Row(i, rec[id_column] if has_id and rec.get(id_column) is not None else i, text,
                      None if text is not None else "the row has fewer fields than the header")


def _jsonl_rows(path: Path, text_column: str, id_column: str) -> Iterator[Row]:
    with path.open(encoding="utf-8") as f:
        i = 0
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                rec = None
            if not isinstance(rec, dict):
                yield Row(i, i, None, f"line {n} is not a JSON object")
            else:
                text = rec.get(text_column)
                yield Row(i, rec.get(id_column, i), text if isinstance(text, str) else None,
                          None if isinstance(text, str) else f"line {n} has no string field {text_column!r}")
            i += 1


def count_rows(path: Path, text_column: str = "text", id_column: str = "id") -> int:
    return sum(1 for _ in read_rows(path, text_column, id_column))


def output_line(row: Row, result: dict, include_text: bool = False) -> dict:
    """A row's output line: its position and id, the text if asked for, then the result."""
    return {"row": row.index, "id": row.id, **({"text": row.text} if include_text else {}), **result}


def load_done(out: Path) -> dict[int, dict]:
    """The lines already in `out`, by row. A last line cut short (no newline) is removed from the file."""
    done: dict[int, dict] = {}
    if not out.exists():
        return done
    good_end = 0
    with out.open("rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                break  # written only in part when the run was interrupted: its row is redone
            try:
                line = json.loads(raw)
            except ValueError:
                line = None
            if not isinstance(line, dict) or not isinstance(line.get("row"), int):
                raise BatchError(f"{out}: line {n} is not a line of `mental-r1 assess` output; write to another "
                                 "--output (or delete the file to start over)")
            done.setdefault(line["row"], line)
            good_end += len(raw)
    if good_end < out.stat().st_size:
        os.truncate(out, good_end)
    return done


def check_resumable(out: Path, done: dict[int, dict], tasks: list[str], model: dict | None) -> None:
    """Refuse to append to an output written for other tasks or by another model."""
    for line in done.values():
        if "assessments" not in line:
            continue
        got = [a["task"] for a in line["assessments"]]
        if got != tasks:
            raise BatchError(f"{out} holds assessments of tasks {','.join(got)}, not {','.join(tasks)}; resume with "
                             "the same --tasks, or write to another --output")
        if model is not None and line.get("model") != model:
            raise BatchError(f"{out} was written by model {line.get('model')}, not {model}; resume with the same "
                             "model, or write to another --output")


async def run_rows(rows: Iterable[Row], assess: Callable[[Row], Awaitable[dict]], out: IO[str],
                   done: dict[int, dict], *, concurrency: int, include_text: bool = False,
                   on_line: Callable[[dict], None] = lambda line: None) -> int:
    """Assess every row without a line in `done`, `concurrency` rows at a time, and append their lines to `out`
    in input order, flushed one by one. Returns the number of lines written.

    Rows are taken from `rows` lazily, at most 4 × concurrency ahead of the oldest unwritten one, so a file of
    any size runs in bounded memory while the assessor always has work queued."""
    gate = asyncio.Semaphore(concurrency)

    async def one(row: Row) -> dict:
        if row.problem:
            return output_line(row, {"error": {"type": "invalid_request", "message": row.problem}}, include_text)
        async with gate:
            return output_line(row, await assess(row), include_text)

    pending: deque[asyncio.Future] = deque()
    written = 0

    def write(line: dict) -> None:
        nonlocal written
        out.write(json.dumps(line, ensure_ascii=False).translate(_LINE_BREAKS) + "\n")
        out.flush()
        written += 1
        on_line(line)

    try:
        for row in rows:
            if row.index in done:
                if done[row.index].get("id") != row.id:
                    raise BatchError(f"row {row.index} of the input has id {row.id!r} but the output's line for it "
                                     f"has id {done[row.index].get('id')!r}: the output belongs to another input; "
                                     "write to another --output")
                continue
            pending.append(asyncio.ensure_future(one(row)))
            while len(pending) >= 4 * concurrency or (pending and pending[0].done()):
                write(await pending.popleft())
        while pending:
            write(await pending.popleft())
    finally:  # interrupted or failed: stop the rows still running (their lines are not written)
        for fut in pending:
            fut.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return written


def _signal_name(s: Any) -> str:
    if isinstance(s, str):
        return s
    return str(s.get("category") or s.get("signal") or s.get("name") or s) if isinstance(s, dict) else str(s)


def summarize(lines: Iterable[dict]) -> dict:
    """Counts over an output: rows, errors by type, labels per task, crisis flags, format-valid rates, and per
    task the assessments whose label set holds more than one label (uncertain)."""
    rows, errors, crisis, signals = 0, Counter(), 0, Counter()
    labels: dict[str, Counter] = defaultdict(Counter)
    valid: Counter = Counter()
    uncertain: Counter = Counter()
    for line in lines:
        rows += 1
        if "error" in line:
            errors[line["error"].get("type", "error")] += 1
            continue
        for a in line["assessments"]:
            labels[a["task"]][a["label"]] += 1
            valid[a["task"]] += bool(a["format_valid"])
            uncertain[a["task"]] += len(a.get("label_set") or ()) > 1
        if line["safety"].get("crisis"):
            crisis += 1
            signals.update(_signal_name(s) for s in line["safety"].get("signals", []))
    n_tasks = sum(sum(c.values()) for c in labels.values())
    return {
        "rows": rows, "assessed": rows - sum(errors.values()), "errors": dict(errors),
        "crisis": crisis, "signals": dict(signals.most_common()),
        "format_valid_rate": sum(valid.values()) / n_tasks if n_tasks else None,
        "tasks": {t: {"n": sum(c.values()), "labels": dict(c.most_common()),
                      "format_valid_rate": valid[t] / sum(c.values()), "uncertain": uncertain[t]}
                  for t, c in labels.items()},
    }


def format_summary(s: dict) -> str:
    errors = ", ".join(f"{t} {n}" for t, n in s["errors"].items())
    signals = ", ".join(f"{k} {n}" for k, n in s["signals"].items())
    lines = [f"rows {s['rows']}: {s['assessed']} assessed, {sum(s['errors'].values())} errors"
             + (f" ({errors})" if errors else ""),
             f"crisis flags: {s['crisis']}" + (f" ({signals})" if signals else "")]
    if s["format_valid_rate"] is not None:
        n = sum(t["n"] for t in s["tasks"].values())
        lines.append(f"format valid: {100 * s['format_valid_rate']:.1f} % of {n} task assessments")
    for task, t in s["tasks"].items():
        counts = ", ".join(f"{label} {n}" for label, n in t["labels"].items())
        unsure = f", uncertain {t['uncertain']}" if t.get("uncertain") else ""
        lines.append(f"{task} (n={t['n']}, format valid {100 * t['format_valid_rate']:.1f} %{unsure}): {counts}")
    return "\n".join(lines)
