import json

from training.checkpoints import COMPLETE_MARKER, mark_complete, prepare_resume


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
