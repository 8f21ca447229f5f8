"""spatialspec.atomic: atomic writes, and removed_on_error, which lets a failed command leave its --out as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from spatialspec.atomic import atomic_write, removed_on_error


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>") for p in folder.rglob("*")}


def test_a_new_out_is_removed_with_the_folders_the_block_created(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(ValueError, match="bad input"), removed_on_error(out):
        atomic_write(out / "runs" / "x.json", "{}")
        raise ValueError("bad input")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_out_keeps_what_was_there(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "kept.txt").write_text("mine")
    (tmp_path / "study.json").write_text("before")
    before = _tree(tmp_path)
    with pytest.raises(RuntimeError), removed_on_error(tmp_path):
        atomic_write(tmp_path / "old" / "new.txt", "x")  # inside an old folder: kept, the folder was there
        atomic_write(tmp_path / "runs" / "r.json", "{}")
        atomic_write(tmp_path / "mlruns.db", "db")
        raise RuntimeError("first run failed")
    assert _tree(tmp_path) == {**before, "old/new.txt": b"x"}


def test_keep_and_interrupts_keep_everything(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError), removed_on_error(out, keep=lambda: True):
        atomic_write(out / "results.json", "[]")
        raise ValueError("third run failed")
    assert (out / "results.json").is_file()
    other = tmp_path / "other"
    with pytest.raises(KeyboardInterrupt), removed_on_error(other):
        atomic_write(other / "resume.pt", "state")
        raise KeyboardInterrupt
    assert (other / "resume.pt").is_file()
    with removed_on_error(tmp_path / "fine") as path:
        atomic_write(path / "ok.txt", "ok")
    assert (tmp_path / "fine" / "ok.txt").is_file()


def test_atomic_write_refuses_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder: expected the name of a file"):
        atomic_write(tmp_path, "x")


def test_replace_folder_swaps_in_the_new_folder_and_keeps_the_old_on_failure(tmp_path, monkeypatch):
    import os
    import shutil

    from spatialspec.atomic import replace_folder

    out, staging = tmp_path / "out", tmp_path / "staging"
    staging.mkdir()
    out.mkdir()
    (out / "old.txt").write_text("old")
    built = staging / "built"
    built.mkdir()
    (built / "new.txt").write_text("new")
    assert replace_folder(built, out, staging) == out
    assert (out / "new.txt").read_text() == "new" and not (out / "old.txt").exists()

    again = staging / "again"
    again.mkdir()
    real_replace = os.replace

    def failing(src, dst):
        if Path(src) == again:
            raise OSError("disk full")
        return real_replace(src, dst)

    shutil.rmtree(staging / "replaced")  # the first swap moved the old folder aside there
    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk full"):
        replace_folder(again, out, staging)
    assert (out / "new.txt").read_text() == "new"  # the previous folder is back
