"""Crash-safe checkpoints: Trainer checkpoints with a completion marker, and final folders that appear atomically.

transformers 5.19's `Trainer._save_checkpoint` writes `checkpoint-N/` in place, file by file (model,
optimizer, scheduler, RNG, then trainer_state.json), and then deletes old checkpoints beyond
`save_total_limit`; a kill in between leaves a `checkpoint-N/` that `get_last_checkpoint` would pick up
although it is incomplete. `AtomicCheckpointMixin` therefore:

- lets the Trainer write `checkpoint-N/` with rotation switched off, fsyncs its files, then writes
  `checkpoint_complete.json` atomically (temp file + fsync + os.replace) — a checkpoint is complete iff it
  holds the marker;
- rotates old checkpoints only after the marker exists, so a complete checkpoint is always on disk.

`--resume` uses `prepare_resume`: it deletes incomplete checkpoints and returns the last complete one.

Final model folders are published with `mental_r1.publish.publish_folder` (built in a hidden temp sibling,
fsynced, renamed into place), so a folder at the final path is always complete.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from mental_r1.publish import fsync_tree

log = logging.getLogger(__name__)

COMPLETE_MARKER = "checkpoint_complete.json"
_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def write_json_atomic(path: Path, data: dict) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(fh.name, path)


def mark_complete(checkpoint: Path, step: int) -> None:
    fsync_tree(checkpoint)
    write_json_atomic(checkpoint / COMPLETE_MARKER, {"global_step": step, "time": time.time()})


def checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every `checkpoint-N` folder in `output_dir`, sorted by step."""
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return sorted(found)


def prepare_resume(output_dir: str | Path) -> str | None:
    """Delete incomplete checkpoints (no marker) in `output_dir`; return the last complete one, or None."""
    last = None
    for _step, path in checkpoints(Path(output_dir)):
        if (path / COMPLETE_MARKER).exists():
            last = path
        else:
            log.warning("removing incomplete checkpoint %s (the run was killed while writing it)", path)
            shutil.rmtree(path)
    return str(last) if last else None


class AtomicCheckpointMixin:
    """Put before a transformers Trainer subclass in the bases: checkpoints get a completion marker, and old
    checkpoints are rotated only once the new one is marked complete."""

    def _save_checkpoint(self, model, trial):
        limit = self.args.save_total_limit
        self.args.save_total_limit = None  # rotation waits until the new checkpoint is marked complete
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        if self.args.should_save:
            run_dir = Path(self._get_output_dir(trial=trial))
            mark_complete(run_dir / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}", self.state.global_step)
            rotate_checkpoints(output_dir=str(run_dir), save_total_limit=limit,
                               best_model_checkpoint=self.state.best_model_checkpoint)


def resume_checkpoint(output_dir: str | Path, resume: bool) -> str | None:
    """The checkpoint a `--resume` run continues from (None: start from scratch). The main process removes
    incomplete checkpoints before the others look (prepare_resume)."""
    if not resume:
        return None
    from accelerate import PartialState

    with PartialState().main_process_first():
        checkpoint = prepare_resume(output_dir)
    logging.getLogger(__name__).info("resuming from %s", checkpoint or "scratch (no complete checkpoint found)")
    return checkpoint
