"""core.outputs: a command writes only into folders it owns, and leaves nothing half-written."""

from __future__ import annotations

import pytest
from hostile import tree_digest

from af_tasks.core.errors import OutputExistsError
from af_tasks.core.outputs import MARKER, claim_output_dir, owned_output, published_dir, write_file_atomic


def test_a_foreign_folder_is_refused_and_left_as_it_was(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "config.json").write_text("{}")
    before = tree_digest(tmp_path)
    with pytest.raises(OutputExistsError, match="theirs"):
        claim_output_dir(theirs, "organism")
    assert tree_digest(tmp_path) == before


def test_a_folder_of_another_kind_is_refused(tmp_path):
    claim_output_dir(tmp_path / "out", "sae")
    with pytest.raises(OutputExistsError, match="sae output, not organism"):
        claim_output_dir(tmp_path / "out", "organism")


def test_a_failed_run_removes_the_folders_it_created(tmp_path):
    with pytest.raises(RuntimeError), owned_output(tmp_path / "a" / "b" / "out", "organism"):
        (tmp_path / "a" / "b" / "out" / "partial.bin").write_bytes(b"x")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_in_an_empty_folder_of_the_user_keeps_the_folder_empty(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(RuntimeError), owned_output(tmp_path / "out", "organism"):
        (tmp_path / "out" / "partial.bin").write_bytes(b"x")
        raise RuntimeError("killed")
    assert (tmp_path / "out").is_dir() and list((tmp_path / "out").iterdir()) == []


def test_a_failed_run_keeps_what_it_can_resume_from_and_its_own_earlier_output(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), owned_output(out, "organism", keep=lambda p: True):
        raise RuntimeError("killed")
    assert (out / MARKER).is_file()
    (out / "earlier.json").write_text("{}")
    with pytest.raises(RuntimeError), owned_output(out, "organism"):  # resumed: not fresh
        raise RuntimeError("killed")
    assert (out / "earlier.json").is_file()


def test_a_published_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "reports" / "report"
    with published_dir(target, "report", "--out") as staging:
        (staging / "report.json").write_text("1")
    assert (target / "report.json").read_text() == "1" and (target / MARKER).is_file()
    with pytest.raises(RuntimeError), published_dir(target, "report", "--out") as staging:
        (staging / "report.json").write_text("2")
        raise RuntimeError("killed")
    assert (target / "report.json").read_text() == "1"  # the earlier result, whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["report"]  # no staging left
    with pytest.raises(RuntimeError), published_dir(tmp_path / "new" / "r", "report", "--out"):
        raise RuntimeError("killed")
    assert not (tmp_path / "new").exists()


def test_a_file_is_replaced_whole_or_left_as_it_was(tmp_path):
    """A writer that dies half-way (a killed savefig) leaves the old file and no temp sibling; the
    temp keeps the target's extension, so format-by-extension writers pick the right format."""
    target = tmp_path / "gaps.png"
    target.write_bytes(b"old")
    seen = []

    def dies(temp):
        seen.append(temp.suffix)
        temp.write_bytes(b"ne")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_file_atomic(target, dies)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["gaps.png"]
    write_file_atomic(target, lambda temp: temp.write_bytes(b"new"))
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["gaps.png"]
    assert seen == [".png"] and target.stat().st_mode & 0o777 == 0o644
