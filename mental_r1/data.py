"""Loaders for the two dataset layouts Mental-R1 trains and evaluates on.

IMHI layout (MentalLLaMA; ../shared/data/imhi):   DIR/{train,val,test}/NAME.csv
    columns `query` (`Consider this post: "…" Question: …`) and `gpt-3.5-turbo` (`<label sentence>.
    Reasoning: <explanation>`). Tasks come from the registry in tasks.py.
Paper layout (Mental-R1's own datasets):          DIR/NAME/{train,val|dev,test}_clean.csv
    columns `text,label,mental_prompt`. Each NAME becomes a task: its labels are the options listed in
    `mental_prompt` (lines `- "X"`), or else the labels seen in its files.

Validation data for every trained dataset: where a dataset has training data but no val split (IMHI's Irf
and MultiWD), a fixed slice of its training rows (one in HOLDOUT_EVERY, chosen by a hash of the post, so
the same rows whatever the seed or subset) is held back: `load_split(…, "train")` leaves it out and
`load_split(…, "val")` returns it. Checkpoints and thresholds are chosen on "val"; "test" is for the final
table only.

Datasets with a test split only (IMHI's CAMS, loneliness and t-sid) are carved into three parts by a salted
hash of the post (`carved_split`): "train" (half), "val" (a fifth) and "test" (the rest, never trained or
selected on). For t-sid the untouched part is the crisis screen's part B (`screen_part`), so the screen's
figures and the model's stay on the same unseen posts; its part A is split 70/30 into train and val.
`load_split(…, carve=False)` returns such a test file whole (the crisis-screen measurement splits it itself).

Every problem with a file raises DataError naming the file and the row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mental_r1.tasks import IMHI_DATASETS, Label, Task, task_for_question


class DataError(ValueError):
    """A dataset file that cannot be used; the message names the file, the row and the fix."""


@dataclass(frozen=True)
class Example:
    dataset: str
    task: Task
    text: str
    label: str  # short label
    explanation: str | None = None  # IMHI reference reasoning, when present


SPLITS = ("train", "val", "test")
HOLDOUT_EVERY = 5
_QUERY_RE = re.compile(r'^\s*Consider this post:\s*"(?P<post>.*)"\s*Question:\s*(?P<q>.+?)\s*$', re.DOTALL)


def _read_rows(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line} is not valid UTF-8 (byte offset {e.start}); "
                        "re-save the file as UTF-8") from None
    reader = csv.DictReader(io.StringIO(content, newline=""))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
    return list(reader)


def load_imhi_csv(path: str | Path, dataset: str | None = None) -> list[Example]:
    path = Path(path)
    dataset = dataset or path.stem
    if dataset not in IMHI_DATASETS:
        raise DataError(f"{path}: unknown IMHI dataset {dataset!r}; expected one of {IMHI_DATASETS}")
    examples = []
    for i, row in enumerate(_read_rows(path, ("query", "gpt-3.5-turbo")), start=1):
        m = _QUERY_RE.match(row["query"] or "")
        if not m or not m.group("post").strip():
            raise DataError(f"{path}: row {i}: query is empty or not 'Consider this post: \"…\" Question: …'")
        try:
            task = task_for_question(dataset, m.group("q"))
            answer = row["gpt-3.5-turbo"] or ""
            label = task.gold_label(answer)
        except KeyError as e:
            raise DataError(f"{path}: row {i}: {e.args[0]}") from None
        expl = answer.split("Reasoning:", 1)[1].strip() if "Reasoning:" in answer else None
        examples.append(Example(dataset, task, m.group("post").strip(), label, expl or None))
    return examples


def _prompt_options(prompt: str) -> list[str]:
    return re.findall(r'^\s*-\s*"(.+?)"\s*$', prompt, flags=re.MULTILINE)


def custom_task(name: str, files: list[Path]) -> Task:
    """A task for a paper-format dataset: question and label set read from its files."""
    prompts: list[str] = []
    labels: list[str] = []
    for f in files:
        for row in _read_rows(f, ("text", "label", "mental_prompt")):
            prompts.append((row["mental_prompt"] or "").strip())
            labels.append((row["label"] or "").strip())
    if not prompts:
        raise DataError(f"dataset {name!r}: no rows in {[str(f) for f in files]}")
    question = max(set(prompts), key=prompts.count)
    options = _prompt_options(question) or sorted({lab for lab in labels if lab})
    # The options are listed separately in the user turn; keep the instruction before the list.
    instruction = re.split(r"\n\s*-\s*Respond with|\n\s*-\s*\"", question)[0].strip() or question
    return Task(name, name, instruction, tuple(Label(o, o) for o in options), f"user dataset {name}")


def load_paper_csv(path: str | Path, task: Task) -> list[Example]:
    path = Path(path)
    examples = []
    for i, row in enumerate(_read_rows(path, ("text", "label", "mental_prompt")), start=1):
        text, label = (row["text"] or "").strip(), (row["label"] or "").strip()
        if not text:
            raise DataError(f"{path}: row {i}: empty text")
        if label not in task.label_names:
            raise DataError(f"{path}: row {i}: unknown label {label!r}; "
                            f"{task.id} labels are {list(task.label_names)}")
        examples.append(Example(task.id, task, text, label))
    return examples


def _paper_files(dset_dir: Path, split: str) -> Path | None:
    names = [f"{split}_clean.csv"] + (["dev_clean.csv"] if split == "val" else [])
    return next((dset_dir / n for n in names if (dset_dir / n).exists()), None)


def list_datasets(data_dir: str | Path, split: str) -> list[str]:
    """Datasets available for `split` under `data_dir`, in either layout."""
    data_dir = Path(data_dir)
    if (data_dir / split).is_dir():
        return sorted(p.stem for p in (data_dir / split).glob("*.csv"))
    return sorted(p.name for p in data_dir.iterdir() if p.is_dir() and _paper_files(p, split))


def is_held_out(example: Example) -> bool:
    """True for the fixed one-in-HOLDOUT_EVERY training rows that serve as validation data of a dataset
    without a val split (decided by the post alone)."""
    digest = hashlib.sha256(example.text.encode()).digest()  # a post asked several questions stays on one side
    return int.from_bytes(digest[:4], "big") % HOLDOUT_EVERY == 0


def _hash_byte(salt: bytes, text: str) -> int:
    return hashlib.sha256(salt + text.encode()).digest()[0]


def screen_part(text: str) -> str:
    """'A' (develop and fit) or 'B' (report only) for a t-sid post: the crisis screen's salted split
    (training/screen_eval.py), independent of is_held_out's."""
    return "A" if _hash_byte(b"crisis-screen:", text) % 2 == 0 else "B"


UNTOUCHED_BY_SCREEN_PART = ("t-sid",)  # datasets whose untouched part is the crisis screen's part B


def carved_split(example: Example) -> str:
    """Which part of a test-only dataset a post belongs to: "train", "val" or "test" (decided by the post
    alone, so every question about one post stays in one part)."""
    if example.dataset in UNTOUCHED_BY_SCREEN_PART:
        if screen_part(example.text) == "B":
            return "test"
        return "train" if _hash_byte(b"carve-a:", example.text) % 10 < 7 else "val"
    h = _hash_byte(b"carve:", example.text) % 10
    return "train" if h < 5 else "val" if h < 7 else "test"


def _read_split(data_dir: Path, split: str, name: str) -> list[Example]:
    if (data_dir / split).is_dir():
        return load_imhi_csv(data_dir / split / f"{name}.csv", name)
    files = [f for s in SPLITS if (f := _paper_files(data_dir / name, s))]
    return load_paper_csv(_paper_files(data_dir / name, split), custom_task(name, files))


def load_split(data_dir: str | Path, split: str, datasets: Iterable[str] | None = None,
               carve: bool = True) -> list[Example]:
    """All examples of `split` (train/val/test) for `datasets` (default: every dataset present).

    Datasets with training data but no val split contribute their held-out slice (is_held_out) to "val"
    and the rest of their rows to "train"; datasets with a test split only are carved (carved_split) into
    train, val and an untouched test part, unless `carve=False` (then "test" is the whole file and they have
    no train or val rows). See the module docstring.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {SPLITS}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data directory {data_dir} does not exist; pass --data-dir pointing to the IMHI "
                        "folder (…/imhi) or a folder of paper-format datasets")
    own = list_datasets(data_dir, split)
    with_train = set(list_datasets(data_dir, "train"))
    with_val = set(list_datasets(data_dir, "val"))
    holdout = [d for d in with_train if d not in with_val] if split in ("train", "val") else []
    carved = [d for d in list_datasets(data_dir, "test") if d not in with_train | with_val] if carve else []
    available = sorted(set(own) | (set(holdout) if split == "val" else set()) | set(carved))
    if not available:
        raise DataError(f"{data_dir}: no {split} data found; expected the IMHI layout DIR/{{train,val,test}}/NAME.csv "
                        "or the paper layout DIR/NAME/{train,val,test}_clean.csv (pass the folder that holds "
                        "them, e.g. ../shared/data/imhi, not ../shared/data/imhi/test)")
    wanted = list(datasets) if datasets else available
    missing = [d for d in wanted if d not in available]
    if missing:
        raise DataError(f"{data_dir}: no {split} data for {missing}; available: {available}")
    out: list[Example] = []
    for name in wanted:
        if name in carved:  # a test-only dataset: this split's part of its test file
            out.extend(ex for ex in _read_split(data_dir, "test", name) if carved_split(ex) == split)
        elif name in holdout:  # "val" takes the held-out slice of the training rows, "train" the rest
            out.extend(ex for ex in _read_split(data_dir, "train", name) if is_held_out(ex) == (split == "val"))
        else:
            out.extend(_read_split(data_dir, split, name))
    return out
