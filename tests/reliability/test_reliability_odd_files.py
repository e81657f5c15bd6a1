"""Symlinks, special files and oversized files in a dataset (issue 16, item 7).

Links are followed while they stay inside the data folder; a link leaving it, and anything
that is not a regular file, is refused by name (or skipped with --skip-corrupt) without
ever being opened: a FIFO named .jpg would block a reader forever, /dev/zero never ends.
"""

from __future__ import annotations

import os
import socket
import stat
import zipfile

import pytest

from rsdistill.data.sources import MAX_IMAGE_BYTES_ENV


def add_fifo(path):
    os.mkfifo(path)


def add_socket(path):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()  # the socket file stays


def add_dev_zero_link(path):
    os.symlink("/dev/zero", path)


def add_broken_link(path):
    os.symlink(path.parent / "does-not-exist.png", path)


def add_outside_link(path):
    outside = path.parents[2] / "outside.png"
    outside.write_bytes((path.parent / "img0.png").read_bytes())
    os.symlink(outside, path)


# name -> (how to make a.png-named entry in class "a", words the refusal must use)
ODD_FILES = {
    "fifo": (add_fifo, "named pipe (FIFO), not a regular file"),
    "socket": (add_socket, "a socket, not a regular file"),
    "dev_zero_link": (add_dev_zero_link, "a link to /dev/zero, outside the data folder"),
    "broken_link": (add_broken_link, "a broken link"),
    "link_outside_root": (add_outside_link, "outside the data folder"),
}


@pytest.mark.parametrize("case", sorted(ODD_FILES))
def test_odd_file_is_refused_by_name_and_skippable(case, make_tree, cli, kit, tmp_path):
    root = make_tree({"a": 4, "b": 4})
    odd = root / "a" / "odd.jpg"
    ODD_FILES[case][0](odd)
    before = kit.snapshot(root)
    cache = tmp_path / "cache"

    refused = cli(*kit.info(root, cache))
    assert refused.rc == 2
    refused.error_line(f"{odd}", ODD_FILES[case][1], "--skip-corrupt")
    assert not list(cache.glob("*.pt"))

    skipped = cli(*kit.info(root, cache, "--skip-corrupt", "--json"))
    assert skipped.rc == 0, skipped.err
    assert '"skipped_corrupt": 1' in skipped.out
    assert '"counts": {"a": 4, "b": 4}' in skipped.out
    assert kit.snapshot(root) == before  # nothing in the data folder touched


def test_device_node_inside_the_root_is_never_opened(make_tree, cli, kit, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    root = make_tree({"a": 3, "b": 3})
    node = root / "a" / "zero.png"
    os.mknod(node, stat.S_IFCHR | 0o644, os.makedev(1, 5))  # the device /dev/zero is
    result = cli(*kit.info(root, tmp_path / "cache"))
    assert result.rc == 2
    result.error_line(str(node), "a character device, not a regular file")


def test_fifo_does_not_hang_the_real_cli(make_tree, cli_process, kit, tmp_path):
    # In a subprocess with a time limit: a blocking open would never return.
    root = make_tree({"a": 3, "b": 3})
    os.mkfifo(root / "b" / "stuck.jpg")
    result = cli_process(*kit.info(root, tmp_path / "cache"), timeout=120)
    assert result.rc == 2
    result.error_line("stuck.jpg", "named pipe")
    trained = cli_process(*kit.train(root, tmp_path / "cache", tmp_path / "run",
                                     "--split-fractions", "34/33/33"), timeout=300)
    trained.error_line("stuck.jpg")
    assert not (tmp_path / "run").exists()


def test_symlinked_class_folder_inside_the_root_is_used(make_tree, cli, kit, tmp_path):
    root = make_tree({"a": 3, "b": 3})
    kit.write_images(root / ".store" / "c", 3, seed=9)
    os.symlink(root / ".store" / "c", root / "c")  # absolute link, still inside the root
    os.symlink("a", root / "a_alias")  # relative link to a sibling class
    result = cli(*kit.info(root, tmp_path / "cache", "--json"))
    assert result.rc == 0, result.err
    assert '"counts": {"a": 3, "a_alias": 3, "b": 3, "c": 3}' in result.out


def test_linked_root_and_linked_file_inside_it_are_used(make_tree, cli, kit, tmp_path):
    real = make_tree({"a": 3, "b": 3}, name="real")
    os.symlink(real / "a" / "img0.png", real / "b" / "copy_of_a0.png")
    os.symlink(real, tmp_path / "root_link")
    result = cli(*kit.info(tmp_path / "root_link", tmp_path / "cache", "--json"))
    assert result.rc == 0, result.err
    assert '"counts": {"a": 3, "b": 4}' in result.out


def test_class_folder_linked_from_outside_is_refused(make_tree, cli, kit, tmp_path):
    root = make_tree({"a": 3, "b": 3})
    elsewhere = tmp_path / "elsewhere" / "c"
    kit.write_images(elsewhere, 3)
    os.symlink(elsewhere, root / "c")
    refused = cli(*kit.info(root, tmp_path / "cache"))
    assert refused.rc == 2
    refused.error_line(f"{root / 'c'} is a link to {elsewhere}", "--skip-corrupt")
    skipped = cli(*kit.info(root, tmp_path / "cache", "--skip-corrupt", "--json"))
    assert skipped.rc == 0, skipped.err
    assert '"counts": {"a": 3, "b": 3}' in skipped.out
    assert any("left out 1 folder(s)" in w for w in skipped.warnings)


def test_link_loop_is_listed_once(make_tree, cli, kit, tmp_path):
    root = make_tree({"a": 3, "b": 3})
    os.symlink("..", root / "a" / "up")  # a/up/a/up/... would never end
    result = cli(*kit.info(root, tmp_path / "cache", "--json"))
    assert result.rc == 0, result.err
    assert '"counts": {"a": 3, "b": 3}' in result.out


def test_size_cap_refuses_large_files_and_is_overridable(make_tree, cli, kit, tmp_path,
                                                         monkeypatch):
    root = make_tree({"a": 3, "b": 3})
    big = root / "a" / "big.png"
    big.write_bytes((root / "a" / "img0.png").read_bytes() + b"\0" * 20_000)
    limit = 10_000
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, str(limit))
    refused = cli(*kit.info(root, tmp_path / "cache"))
    assert refused.rc == 2
    refused.error_line(str(big), f"over the per-image limit of {limit:,} bytes",
                       MAX_IMAGE_BYTES_ENV)
    skipped = cli(*kit.info(root, tmp_path / "cache", "--skip-corrupt", "--json"))
    assert '"skipped_corrupt": 1' in skipped.out
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, "nonsense")
    bad = cli(*kit.info(root, tmp_path / "cache"))
    assert bad.rc == 2
    bad.error_line(MAX_IMAGE_BYTES_ENV, "nonsense")
    monkeypatch.delenv(MAX_IMAGE_BYTES_ENV)
    ok = cli(*kit.info(root, tmp_path / "cache", "--json"))  # 256 MiB by default
    assert ok.rc == 0 and '"counts": {"a": 4, "b": 3}' in ok.out


def test_zip_symlink_member_and_oversized_member(make_tree, cli, kit, tmp_path, monkeypatch):
    root = make_tree({"a": 3, "b": 3})
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(root.rglob("*.png")):
            zf.write(path, path.relative_to(root).as_posix())
        link = zipfile.ZipInfo("a/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    refused = cli(*kit.info(archive, tmp_path / "cache"))
    assert refused.rc == 2
    refused.error_line(f"{archive}:a/link.png", "symbolic link")
    skipped = cli(*kit.info(archive, tmp_path / "cache", "--skip-corrupt", "--json"))
    assert skipped.rc == 0 and '"counts": {"a": 3, "b": 3}' in skipped.out
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, "100")  # the declared size decides, unread
    too_big = cli(*kit.info(archive, tmp_path / "cache"))
    assert too_big.rc == 2
    too_big.error_line(f"{archive}:a/img0.png", "over the per-image limit of 100 bytes")
