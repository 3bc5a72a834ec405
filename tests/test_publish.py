"""The atomic-publish helper and its locks (podbench/publish.py), in-process and fast."""

from __future__ import annotations

from pathlib import Path

import pytest

from podbench.publish import (
    TMP_TAG,
    is_temp,
    lock_path,
    locked,
    publish_dir,
    publish_file,
    remove_leftovers,
)


def write_files(**files):
    def write(tmp: Path) -> str:
        for name, text in files.items():
            (tmp / name).write_text(text)
        return "done"

    return write


def test_publish_replaces_the_old_folder_and_leaves_no_temporary(tmp_path):
    final = tmp_path / "run"
    publish_dir(final, write_files(a="1"), "marker", "test")
    publish_dir(final, write_files(b="2"), "marker", "test")
    assert sorted(p.name for p in final.iterdir()) == ["b", "marker"]
    assert (final / "marker").read_text() == "done"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_a_failed_write_keeps_the_old_folder_and_removes_its_temporary(tmp_path):
    final = tmp_path / "run"
    publish_dir(final, write_files(a="1"), "marker", "test")

    def broken(tmp: Path) -> str:
        (tmp / "half").write_text("x")
        raise RuntimeError("killed half way")

    with pytest.raises(RuntimeError):
        publish_dir(final, broken, "marker", "test")
    assert sorted(p.name for p in final.iterdir()) == ["a", "marker"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_publish_file_ends_like_its_target(tmp_path):
    seen = []
    publish_file(
        tmp_path / "summary.csv", lambda tmp: seen.append(tmp) or tmp.write_text("x"), "test"
    )
    assert seen[0].name.endswith(".csv") and is_temp(seen[0])
    assert [p.name for p in tmp_path.iterdir()] == ["summary.csv"]


def test_leftovers_are_removed_unless_locked_and_an_aside_folder_is_restored(tmp_path):
    dead = tmp_path / f"a{TMP_TAG}123-abcd"
    dead.mkdir()
    live = tmp_path / f"b{TMP_TAG}456-abcd"
    live.mkdir()
    aside = tmp_path / f"c{TMP_TAG}old-789-abcd"  # killed between the two renames
    aside.mkdir()
    (aside / "marker").write_text("done")
    (tmp_path / "d.lock").touch()  # a dead builder's lock
    with locked(tmp_path / "b"):
        removed = remove_leftovers(tmp_path)
    assert sorted(p.name for p in removed) == sorted([dead.name, aside.name, "d.lock"])
    assert live.exists() and not dead.exists()
    assert (tmp_path / "c" / "marker").read_text() == "done"
    assert not lock_path(tmp_path / "b").exists()  # removed on release


def test_a_held_lock_refuses_a_second_holder(tmp_path):
    with locked(tmp_path / "run") as waited:
        assert waited is False
        with pytest.raises(BlockingIOError):
            with locked(tmp_path / "run", blocking=False):
                pass
    with locked(tmp_path / "run", blocking=False):
        pass
