"""What every recorded benchmark result carries: the code it measured (git commit, and whether the tree had
uncommitted changes) and how busy the machine was (load averages at the start and the end of the run).

    started = os.getloadavg()
    ...
    result = {..., "provenance": provenance(started)}
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=REPO).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None  # not a git checkout (e.g. an installed package): recorded as unknown


def git_commit() -> str | None:
    return _git("rev-parse", "--short", "HEAD")


def provenance(loadavg_start: tuple[float, float, float]) -> dict:
    """Commit, uncommitted changes, machine (with its CPU's vector extensions: bf16 is fast only with
    AVX512-BF16/AMX, so numbers from one kind of CPU do not carry to the other) and the 1/5/15-minute load
    averages at the start and now."""
    import torch

    from mental_r1.engine import native_bf16

    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"date": dt.datetime.now().isoformat(timespec="seconds"), "git_commit": git_commit(),
            "git_dirty": None if status is None else bool(status), "cpus": os.cpu_count(),
            "platform": platform.platform(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": native_bf16(), "loadavg_start": list(loadavg_start),
            "loadavg_end": list(os.getloadavg())}
