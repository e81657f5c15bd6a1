"""Smaller hostile inputs of issue 25 (items 5 and 7): NaN split fractions, a key given
twice in a study config, --resume of a directory that is not there, an unknown student
among several, and a lock file the full disk refuses."""

from __future__ import annotations

import errno
import os

import pytest


@pytest.mark.parametrize("fractions", ["nan/20/20", "60/nan/20", "inf/20/20", "60/20/-inf"])
def test_split_fractions_that_are_not_finite_are_one_line(fractions, make_tree, cli, kit,
                                                          tmp_path):
    root = make_tree({"a": 3, "b": 3})
    out = tmp_path / "run"
    result = cli(*kit.train(root, tmp_path / "cache", out, "--split-fractions", fractions))
    assert result.rc == 2
    result.error_line("--split-fractions", "finite non-negative numbers", f"got {fractions}")
    assert not out.exists()


def test_study_config_giving_a_key_twice_is_refused(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "study.yaml"
    config.write_text("out: study\n"
                      "teacher:\n  model: resnet8\n  epochs: 1\n"
                      "student:\n  epochs: 2\n  model: resnet8\n  epochs: 60\n")
    result = cli("run", "--config", config)
    assert result.rc == 2
    result.error_line(str(config), "gives the key 'epochs' twice (line 8)", "keep one")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_study_config_merge_keys_are_not_duplicates(tmp_path):
    from rsdistill.config import read_yaml

    config = tmp_path / "anchors.yaml"
    config.write_text("base: &b {epochs: 1, lr: 0.1}\nstudent:\n  <<: *b\n  epochs: 3\n")
    assert read_yaml(config)["student"] == {"epochs": 3, "lr": 0.1}


@pytest.mark.parametrize("command", ["train", "distill", "sweep"])
def test_resume_of_a_directory_that_is_not_there_is_refused(command, finished_run, tiny_tree3,
                                                            tiny_cache, tmp_path, cli, kit):
    out = tmp_path / "typo" / "run"
    argv = {"train": ["train", *kit.tiny_data(tiny_tree3, tiny_cache), "--model", "resnet8"],
            "distill": ["distill", "--teacher", finished_run, "--student", "resnet8"],
            "sweep": ["sweep", "--teacher", finished_run, "--student", "resnet8", "--alphas", "0",
                      "--jobs", "1"]}[command]
    result = cli(*argv, *kit.TINY_TRAIN, "--out", out, "--resume")
    assert result.rc == 2
    result.error_line(f"--resume: {out} does not exist", "leave out --resume")
    assert not (tmp_path / "typo").exists()


def test_pareto_checks_every_student_before_training_one(finished_run, tmp_path, cli, kit):
    out = tmp_path / "pareto"
    result = cli("pareto", "--teacher", finished_run, "--students", "resnet8,notamodel", "--sizes",
                 "16", "--seeds", "1", "--jobs", "1", *kit.TINY_TRAIN, "--out", out)
    assert result.rc == 2
    result.error_line("--students: unknown model notamodel", "resnet8x4", "timm:<name>")
    assert not out.exists()


def test_full_disk_at_the_lock_file_names_it(make_tree, cli, kit, tmp_path, monkeypatch):
    real_pwrite = os.pwrite

    def pwrite(fd, data, offset):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".rsdistill.lock"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    root = make_tree({"a": 3, "b": 3})
    out = tmp_path / "new" / "run"
    result = cli(*kit.train(root, tmp_path / "cache", out, "--split-fractions", "34/33/33"))
    assert result.rc == 2
    result.error_line(f"cannot write the lock file {out / '.rsdistill.lock'}",
                      "No space left on device", "choose another --out")
    assert not (tmp_path / "new").exists()  # the folders it made are gone again
