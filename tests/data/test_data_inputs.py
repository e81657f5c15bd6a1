"""Inputs of ``rsdistill predict``: files, folders and zips as the decoder's sources."""

from __future__ import annotations

import zipfile

import pytest

from rsdistill.data.decode import decode_images
from rsdistill.data.inputs import collect_inputs, count_inputs, is_readable_image, readable_extensions
from rsdistill.errors import DataError


def test_readable_extensions_are_the_formats_pillow_decodes():
    exts = readable_extensions()
    assert {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp"} <= exts
    # Stub plugins only identify their format; save-only formats cannot be read.
    assert not {".h5", ".grib", ".bufr", ".pdf", ".txt", ".zip"} & exts
    assert is_readable_image("a/b/IMG.JPG") and not is_readable_image("a/._img.jpg")
    assert not is_readable_image("a/notes.txt") and not is_readable_image("a/.jpg")


def test_folders_are_searched_recursively_in_natural_order(tmp_path, image_bytes):
    for rel in ("b/img10.png", "b/img9.png", "a.jpg", "deep/er/x.tif", ".hidden/h.png",
                "b/.h.png", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(image_bytes(".png") if rel.endswith("png") else b"x")
    (group,) = collect_inputs([tmp_path])
    assert group.files == ["a.jpg", "b/img9.png", "b/img10.png", "deep/er/x.tif"]
    assert group.names == [str(tmp_path / f) for f in group.files]


def test_zip_members_are_named_archive_colon_member(tmp_path, image_bytes):
    path = tmp_path / "in.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x/1.png", image_bytes(".png"))
        zf.writestr("2.jpg", image_bytes(".jpg"))
        zf.writestr("__MACOSX/x/._1.png", b"fork")
        zf.writestr("x/", b"")
    (group,) = collect_inputs([path])
    assert group.files == ["2.jpg", "x/1.png"] and group.names == [f"{path}:2.jpg", f"{path}:x/1.png"]
    decoded = decode_images(group.source, group.files, (8,), workers=1)
    assert decoded.ok.all() and decoded.arrays[8].shape == (2, 3, 8, 8)


def test_an_explicit_file_is_tried_whatever_its_suffix(tmp_path, image_bytes):
    odd = tmp_path / "scene.data"
    odd.write_bytes(image_bytes(".png"))
    (tmp_path / "sub").mkdir()
    other = tmp_path / "sub" / "b.png"
    other.write_bytes(image_bytes(".png"))
    groups = collect_inputs([odd, tmp_path / "scene.data", other, odd])
    # Consecutive files of one folder share one source; a file elsewhere starts another.
    assert [g.names for g in groups] == [[str(odd), str(odd)], [str(other)], [str(odd)]]
    assert count_inputs(groups) == 4
    decoded = decode_images(groups[0].source, groups[0].files, (5,), workers=1)
    assert decoded.ok.all()


@pytest.mark.parametrize("case, needle", [
    ("none", "no inputs given"), ("missing", "does not exist"), ("empty", "no image files found"),
    ("fake_zip", "is not a zip archive"),
])
def test_bad_inputs_raise_one_clear_error(tmp_path, case, needle):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    (tmp_path / "fake.zip").write_bytes(b"plain bytes")
    paths = {"none": [], "missing": [tmp_path / "gone.png"], "empty": [tmp_path / "empty"],
             "fake_zip": [tmp_path / "fake.zip"]}[case]
    with pytest.raises(DataError, match=needle):
        collect_inputs(paths)


def test_undecodable_files_are_reported_with_a_plain_reason(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    (group,) = collect_inputs([tmp_path])
    decoded = decode_images(group.source, group.files, (4,), workers=1)
    assert not decoded.ok.any()
    assert decoded.errors == [("bad.png", "not an image in a known format, or corrupt")]
