import json

import pytest

from training.checkpoints import COMPLETE_MARKER, mark_complete, prepare_resume, publish_folder


def test_prepare_resume_skips_and_removes_incomplete(tmp_path):
    for step in (2, 4, 6):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"x")
    mark_complete(tmp_path / "checkpoint-2", 2)
    mark_complete(tmp_path / "checkpoint-4", 4)  # checkpoint-6: killed while writing
    assert json.loads((tmp_path / "checkpoint-4" / COMPLETE_MARKER).read_text())["global_step"] == 4
    assert prepare_resume(tmp_path) == str(tmp_path / "checkpoint-4")
    assert not (tmp_path / "checkpoint-6").exists()
    assert (tmp_path / "checkpoint-2").exists()


def test_prepare_resume_without_checkpoints(tmp_path):
    assert prepare_resume(tmp_path) is None
    assert prepare_resume(tmp_path / "missing") is None


def test_publish_folder_replaces_atomically(tmp_path):
    target = tmp_path / "final"
    publish_folder(target, lambda d: (d / "a.txt").write_text("one"))
    publish_folder(target, lambda d: (d / "b.txt").write_text("two"))
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["final"]  # no temp or old folder left


def test_publish_folder_failure_leaves_the_old_folder(tmp_path):
    target = tmp_path / "final"
    publish_folder(target, lambda d: (d / "a.txt").write_text("one"))

    def broken(d):
        (d / "half.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        publish_folder(target, broken)
    assert (target / "a.txt").read_text() == "one"
    assert [p.name for p in tmp_path.iterdir()] == ["final"]
