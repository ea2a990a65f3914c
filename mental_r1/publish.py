"""Publish a folder atomically: a folder at its final path is always complete.

The folder is built in a hidden temp sibling (same file system, so the rename is atomic), its files and
directories are fsynced, it is renamed into place with os.replace, and the parent directory is fsynced so
the rename itself survives a crash. A crash leaves at most a `.NAME.tmp-*` (or `.NAME.old-*`) sibling,
never a partial folder at the final path. Used for the base model, the merged default model and every
folder training writes (training/checkpoints.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def fsync_path(path: str | Path) -> None:
    """Flush one file or directory to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: str | Path) -> None:
    """Flush every file under `folder`, then the directories themselves, to disk."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fsync_path(os.path.join(root, name))
        fsync_path(root)


def publish_folder(target: str | Path, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp)` in a hidden sibling of `target`, fsync it, then rename it to `target` (replacing an old
    folder there) and fsync the parent. If `build` raises, the temp folder is removed and `target` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        build(tmp)
        fsync_tree(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
        fsync_path(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
