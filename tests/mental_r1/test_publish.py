import pytest

from mental_r1.publish import publish_folder


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


def test_files_the_folder_and_the_rename_are_fsynced(tmp_path, fsynced):
    def build(d):
        (d / "sub").mkdir()
        (d / "sub" / "w.bin").write_bytes(b"w")

    publish_folder(tmp_path / "final", build)
    names = [p.name for p in fsynced]
    assert "w.bin" in names and "sub" in names  # the files and the directories, under their temp name
    assert fsynced[-1] == tmp_path  # last: the parent, which holds the rename
