"""pemd_tutorial.staging: a folder is written all at once."""

import pytest

from pemd_tutorial.staging import publish, staging_folder


def test_publish_moves_every_file_and_replaces_those_of_the_same_name(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old")
    (out / "kept.txt").write_text("kept")
    staging = staging_folder(out, "test()")
    assert staging.parent == tmp_path and staging.name.startswith(".out.")
    (staging / "a.txt").write_text("new")
    (staging / "montage").mkdir()
    (staging / "montage" / "slice_1.png").write_bytes(b"png")
    files = publish(staging, out)
    assert sorted(files) == ["a.txt", "montage/slice_1.png"]
    assert (out / "a.txt").read_text() == "new" and (out / "kept.txt").read_text() == "kept"
    assert not any(staging.rglob("*.*"))


def test_no_output_folder_needs_no_staging_folder():
    assert staging_folder(None, "test()") is None


def test_staging_folder_refuses_an_output_that_is_a_file(tmp_path):
    (tmp_path / "out").write_text("")
    with pytest.raises(ValueError, match=r"^register\(\) output folder .*out' exists and is not a folder"):
        staging_folder(tmp_path / "out", "register()")
