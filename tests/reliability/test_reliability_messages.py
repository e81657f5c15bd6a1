"""What the user reads (issue 16, item 8): plain paths, never Python reprs; a refused
checkpoint is called not safe (or not valid), and nothing suggests turning off
``weights_only`` or repeats torch's advice."""

from __future__ import annotations

import os
import pickle
import re
import zipfile

import pytest
import torch

from rsdistill.data.specs import UCMERCED_CLASSES

REPR = re.compile(r"object at 0x|Source\(|<_io\.|<class |Errno")
TORCH_ADVICE = ("weights_only", "Weights only", "torch.load", "trusted source", "PyTorch 2.6")


def plain(text: str) -> None:
    assert not REPR.search(text), text
    for phrase in TORCH_ADVICE:
        assert phrase not in text, text


def test_zip_messages_name_archive_and_member(build_dataset, cli, kit, tmp_path):
    present = [c for c in UCMERCED_CLASSES if c != "harbor"]
    built = build_dataset(present, per_class=1, prefix="UCMerced_LandUse/Images",
                          zip_name="ucmerced.zip")
    result = cli("data", "info", "--dataset", "ucmerced", "--data-root", built.data_root,
                 "--cache-dir", tmp_path / "cache", "--image-size", "8", "--workers", "1")
    assert result.rc == 2
    line = result.error_line(f"{built.path}:UCMerced_LandUse/Images", "harbor")
    plain(line)


def test_corrupt_member_is_named_as_archive_path_colon_member(build_dataset, cli, kit, tmp_path):
    built = build_dataset(["alpha", "beta"], per_class=3, zip_name="set.zip", prefix="top",
                          extra={"top/beta/broken.jpg": b"<html>not an image</html>"})
    result = cli(*kit.info(built.path, tmp_path / "cache"))
    assert result.rc == 2
    line = result.error_line(f"{built.path}:top/beta/broken.jpg",
                             "not an image in a known format")
    plain(line)


def test_folder_messages_and_info_show_plain_paths(make_tree, cli, kit, tmp_path):
    root = make_tree({"a": 3, "b": 3})
    (root / "b" / "junk.png").write_bytes(b"\x89PNG but not really")
    result = cli(*kit.info(root, tmp_path / "cache"))
    plain(result.error_line(str(root / "b" / "junk.png")))
    (root / "b" / "junk.png").unlink()
    shown = cli(*kit.info(root, tmp_path / "cache"))
    assert shown.rc == 0
    assert f"source      {root}\n" in shown.out
    plain(shown.out)


def _evil(path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"format": "rsdistill-model/1", "model": {}, "meta": Payload()}, path)


def _old_pickle(path):
    # A plain pickle (protocol 4): torch also prints a warning about the protocol.
    path.write_bytes(pickle.dumps({"model": {"w": [1, 2, 3]}}, protocol=4))


def _truncated(path):
    torch.save({"model": {"w": torch.zeros(64)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path):
    path.write_bytes(b"")


# file maker -> what the one error line must call it
CHECKPOINTS = {
    "pickled_code": (_evil, "not a safe rsdistill checkpoint"),
    "plain_pickle": (_old_pickle, "not a safe rsdistill checkpoint"),
    "truncated": (_truncated, "not a valid rsdistill checkpoint"),
    "empty": (_empty, "not a valid rsdistill checkpoint"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINTS))
def test_refused_checkpoint_is_one_plain_line(case, cli_process, tmp_path):
    path = tmp_path / "model.pt"
    CHECKPOINTS[case][0](path)
    before = path.read_bytes()
    result = cli_process("evaluate", path)
    assert result.rc == 2
    line = result.error_line(str(path), CHECKPOINTS[case][1])
    plain(line)
    assert "pwned" not in result.out + result.err
    assert path.read_bytes() == before


@pytest.mark.parametrize("case", ["pickled_code", "plain_pickle", "truncated"])
def test_refused_pretrained_weights_are_one_plain_line(case, make_tree, cli_process, kit,
                                                       tmp_path):
    path = tmp_path / "weights.pt"
    CHECKPOINTS[case][0](path)
    root = make_tree({"a": 3, "b": 3})
    result = cli_process(*kit.train(root, tmp_path / "cache", tmp_path / "run",
                                    "--split-fractions", "34/33/33", "--pretrained", path))
    assert result.rc == 2
    line = result.error_line(str(path))
    plain(line)
    if case != "truncated":
        assert "not a safe checkpoint" in line


def test_unsafe_cache_file_is_rebuilt_with_a_plain_warning(make_tree, cli, kit, tmp_path):
    root = make_tree({"a": 3, "b": 3})
    cache = tmp_path / "cache"
    assert cli(*kit.info(root, cache)).rc == 0
    (cached,) = cache.glob("*.pt")
    _evil(cached)
    result = cli(*kit.info(root, cache))
    assert result.rc == 0
    (warning,) = [w for w in result.warnings if "unusable" in w]
    assert str(cached) in warning and "pickled Python objects" in warning
    plain(warning)
    assert torch.load(cached, weights_only=True)["images"].shape[0] == 6  # rebuilt


def test_zip_traversal_is_still_refused(tmp_path, cli, kit, image_bytes):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/ok.jpg", image_bytes())
        zf.writestr("b/ok.jpg", image_bytes(class_index=1))
        zf.writestr("../escape.jpg", image_bytes())
    result = cli(*kit.info(archive, tmp_path / "cache"))
    assert result.rc == 2
    plain(result.error_line("unsafe entry", "../escape.jpg"))
    assert not (tmp_path.parent / "escape.jpg").exists()
