"""``rsdistill data info`` / ``data download``: in-process and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rsdistill.cli.main import main
from rsdistill.data.specs import UCMERCED_CLASSES

REPO_SRC = Path(__file__).resolve().parents[2] / "src"


def run_cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def info_args(root, cache_dir, *extra):
    return ["data", "info", "--dataset", "folder", "--data-root", str(root),
            "--cache-dir", str(cache_dir), "--image-size", "8", "--workers", "1", *extra]


def assert_one_error_line(err, *needles):
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    assert lines[0].startswith("rsdistill: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert str(n) in lines[0], f"{n!r} not in {lines[0]!r}"


def pt_files(cache_dir):
    return list(Path(cache_dir).glob("*.pt")) if Path(cache_dir).exists() else []


# ----------------------------------------------------------------------------- success

def test_info_json(folder_dataset, cache_dir, capsys):
    rc, out, err = run_cli(capsys, *info_args(folder_dataset.data_root, cache_dir, "--json"))
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1  # one JSON object, nothing else on stdout
    info = json.loads(lines[0])
    assert info["classes"] == ["alpha", "beta", "gamma"]
    assert info["counts"] == {"alpha": 6, "beta": 6, "gamma": 6}
    assert info["total"] == 18
    assert info["splits"] == {"train": 12, "val": 3, "test": 3}
    assert all(type(v) is int for v in info["splits"].values())
    assert info["image_size"] == 8
    assert Path(info["cache_path"]).parent == cache_dir
    assert len(pt_files(cache_dir)) == 1


def test_info_text(folder_dataset, cache_dir, capsys):
    rc, out, err = run_cli(capsys, *info_args(folder_dataset.data_root, cache_dir))
    assert rc == 0, err
    assert "folder  (3 classes, 18 images)" in out
    assert "train 12 / val 3 / test 3" in out
    assert "8×8" in out
    for cls in ("alpha", "beta", "gamma"):
        assert any(line.split() == [cls, "6"] for line in out.splitlines()), out


def test_info_zip_and_split_fractions(build_dataset, cache_dir, capsys):
    built = build_dataset(["alpha", "beta", "gamma"], per_class=6, zip_name="set.zip",
                          prefix="top")
    rc, out, err = run_cli(capsys, *info_args(built.path, cache_dir, "--json",
                                              "--split-fractions", "100/0/0"))
    assert rc == 0, err
    assert json.loads(out)["splits"] == {"train": 18, "val": 0, "test": 0}


def test_info_allow_missing_classes(build_dataset, cache_dir, capsys):
    present = [c for c in UCMERCED_CLASSES if c != "runway"]
    built = build_dataset(present, per_class=1, prefix="UCMerced_LandUse/Images", ext=".tif")
    base = ["data", "info", "--dataset", "ucmerced", "--data-root", str(built.data_root),
            "--cache-dir", str(cache_dir), "--image-size", "8", "--json"]
    rc, out, err = run_cli(capsys, *base)
    assert rc == 2 and out == ""
    assert_one_error_line(err, "missing: runway", "--allow-missing-classes")
    assert pt_files(cache_dir) == []

    rc, out, err = run_cli(capsys, *base, "--allow-missing-classes")
    assert rc == 0, err
    info = json.loads(out)
    assert info["classes"] == present
    assert info["total"] == 20
    assert info["missing_classes"] == ["runway"]


def test_info_skip_corrupt(build_dataset, cache_dir, capsys):
    built = build_dataset(["alpha", "beta"], per_class=3, extra={"beta/bad.jpg": b"junk"})
    rc, out, err = run_cli(capsys, *info_args(built.data_root, cache_dir))
    assert rc == 2
    assert_one_error_line(err, "beta/bad.jpg", "--skip-corrupt")
    rc, out, err = run_cli(capsys, *info_args(built.data_root, cache_dir, "--skip-corrupt",
                                              "--json"))
    assert rc == 0, err
    info = json.loads(out)
    assert info["skipped_corrupt"] == 1 and info["total"] == 6


def test_data_root_and_cache_dir_from_environment(folder_dataset, tmp_path, capsys,
                                                  monkeypatch):
    env_cache = tmp_path / "env-cache"
    monkeypatch.setenv("RSDISTILL_DATA", str(folder_dataset.data_root))
    monkeypatch.setenv("RSDISTILL_CACHE", str(env_cache))
    rc, out, err = run_cli(capsys, "data", "info", "--dataset", "folder", "--image-size", "8",
                           "--json")
    assert rc == 0, err
    info = json.loads(out)
    assert info["total"] == 18
    assert Path(info["cache_path"]).parent == env_cache
    assert len(pt_files(env_cache)) == 1


# ----------------------------------------------------------------------------- errors

def test_missing_data_root(tmp_path, cache_dir, capsys):
    missing = tmp_path / "nowhere"
    rc, out, err = run_cli(capsys, *info_args(missing, cache_dir))
    assert rc == 2 and out == ""
    assert_one_error_line(err, missing, "does not exist")


def test_not_a_zip(tmp_path, cache_dir, capsys):
    fake = tmp_path / "x.zip"
    fake.write_text("not a zip")
    rc, out, err = run_cli(capsys, *info_args(fake, cache_dir))
    assert rc == 2
    assert_one_error_line(err, fake, "not a zip")
    assert not cache_dir.exists()


def test_unknown_layout(build_dataset, cache_dir, capsys):
    built = build_dataset(["alpha"], per_class=1, prefix="a/b/c", zip_name="EuroSAT.zip")
    rc, out, err = run_cli(capsys, "data", "info", "--dataset", "eurosat", "--data-root",
                           str(built.data_root), "--cache-dir", str(cache_dir))
    assert rc == 2
    assert_one_error_line(err, "unknown layout", built.path)


def test_empty_class_folder(folder_dataset, cache_dir, capsys):
    (folder_dataset.data_root / "zeta").mkdir()
    rc, out, err = run_cli(capsys, *info_args(folder_dataset.data_root, cache_dir))
    assert rc == 2
    assert_one_error_line(err, "zeta")
    assert pt_files(cache_dir) == []


@pytest.mark.parametrize("size", ["0", "99999"])
def test_bad_image_size(folder_dataset, cache_dir, capsys, size):
    args = info_args(folder_dataset.data_root, cache_dir)
    args[args.index("--image-size") + 1] = size
    rc, out, err = run_cli(capsys, *args)
    assert rc == 2
    assert_one_error_line(err, "--image-size", size)


def test_download_aid_explains_no_public_url(tmp_path, capsys):
    rc, out, err = run_cli(capsys, "data", "download", "--dataset", "aid", "--data-root",
                           str(tmp_path / "root"))
    assert rc == 2
    assert_one_error_line(err, "no public")


def test_unknown_dataset_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", "info", "--dataset", "imagenet", "--data-root", str(tmp_path)])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# ----------------------------------------------------------------------------- help

@pytest.mark.parametrize("argv, needles", [
    (["--help"], ["data", "usage: rsdistill"]),
    (["data", "--help"], ["info", "download"]),
    (["data", "info", "--help"], ["--dataset", "--data-root", "--image-size",
                                  "--allow-missing-classes", "--json"]),
])
def test_help(capsys, argv, needles):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for n in needles:
        assert n in out


def test_data_without_action_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data"])
    assert exc.value.code == 2


# ----------------------------------------------------------------------------- subprocess

def run_subprocess(*argv, cache_dir):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_SRC), env.get("PYTHONPATH")) if p)
    env["RSDISTILL_CACHE"] = str(cache_dir)
    return subprocess.run([sys.executable, "-m", "rsdistill", *argv], capture_output=True,
                          text=True, env=env, timeout=120)


def test_subprocess_missing_data_root_exits_2_with_one_line(tmp_path, cache_dir):
    missing = tmp_path / "nowhere"
    proc = run_subprocess("data", "info", "--dataset", "folder", "--data-root", str(missing),
                          cache_dir=cache_dir)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert_one_error_line(proc.stderr, missing)


def test_subprocess_corrupt_image_exits_2_names_file_and_caches_nothing(build_dataset,
                                                                        cache_dir):
    built = build_dataset(["alpha", "beta"], per_class=3, zip_name="set.zip",
                          extra={"alpha/cut.jpg": b"\xff\xd8\xff\xe0 truncated"})
    proc = run_subprocess("data", "info", "--dataset", "folder", "--data-root", str(built.path),
                          "--image-size", "8", "--cache-dir", str(cache_dir),
                          cache_dir=cache_dir)
    assert proc.returncode == 2, proc.stderr
    assert_one_error_line(proc.stderr, "alpha/cut.jpg")
    assert not cache_dir.exists() or list(cache_dir.iterdir()) == []
