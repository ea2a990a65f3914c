from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def fsynced(monkeypatch) -> list[Path]:
    """The paths os.fsync is called on during the test, in order (Linux: read back through /proc/self/fd)."""
    paths: list[Path] = []
    real = os.fsync

    def spy(fd):
        paths.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return paths
