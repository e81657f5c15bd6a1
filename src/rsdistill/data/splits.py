"""Train/val/test splits: stratified and seeded, or read from published split files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch

from rsdistill.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    train: torch.Tensor  # int64 indices into the dataset
    val: torch.Tensor
    test: torch.Tensor

    def sizes(self) -> dict[str, int]:
        return {name: int(getattr(self, name).numel()) for name in SPLITS}

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; choose one of: {', '.join(SPLITS)}")
        return getattr(self, name)


def parse_fractions(text: str | tuple) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in (text.split("/") if isinstance(text, str) else text))
    except ValueError:
        parts = ()
    # float() also reads "nan" and "inf", which no comparison below would catch.
    if len(parts) != 3 or not all(math.isfinite(p) and p >= 0 for p in parts) or parts[0] <= 0:
        shown = text if isinstance(text, str) else "/".join(str(p) for p in text)
        raise DataError(f"--split-fractions must be three finite non-negative numbers with a "
                        f"training share above 0, like 60/20/20; got {shown}")
    total = sum(parts)
    return tuple(p / total for p in parts)  # type: ignore[return-value]


def stratified_split(labels: torch.Tensor, fractions=(0.6, 0.2, 0.2), seed: int = 0) -> Split:
    """Per class: shuffle with ``seed`` and cut at the rounded fractions.

    Rounding per class keeps every class in every split in proportion; with 100
    images a class and 60/20/20 it gives exactly torchgeo's UC Merced sizes
    (1260/420/420).
    """
    f_train, f_val, _ = fractions
    gen = torch.Generator().manual_seed(int(seed))
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in SPLITS}
    num_classes = int(labels.max()) + 1 if labels.numel() else 0
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        n = idx.numel()
        n_train = int(round(n * f_train))
        n_val = int(round(n * f_val))
        n_val = min(n_val, n - n_train)
        parts["train"].append(idx[:n_train])
        parts["val"].append(idx[n_train:n_train + n_val])
        parts["test"].append(idx[n_train + n_val:])
    cat = {k: (torch.sort(torch.cat(v)).values if v else torch.zeros(0, dtype=torch.int64))
           for k, v in parts.items()}
    return Split(**cat)


def find_split_files(split_dir: Path, names: tuple[str, ...]) -> dict[str, Path]:
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DataError(f"split folder {split_dir} does not exist")
    for name in names:
        paths = {s: split_dir / f"{name}-{s}.txt" for s in SPLITS}
        if all(p.is_file() for p in paths.values()):
            return paths
    expected = ", ".join(f"{n}-train.txt" for n in names)
    raise DataError(
        f"no split files in {split_dir}: expected <name>-train.txt, -val.txt and -test.txt "
        f"with name one of ({expected})"
    )


def split_from_files(files: list[str], paths: dict[str, Path]) -> Split:
    """Resolve each listed line to a dataset file by relative path, file name or file stem.

    torchgeo's lists name the original files (``agricultural00.tif``); matching by
    stem also accepts re-encoded copies (``agricultural00.jpg``).
    """
    index: dict[str, int] = {}
    for i, f in enumerate(files):
        p = PurePosixPath(f)
        for key in (f, p.name, p.stem):
            index.setdefault(key, i)
    out = {}
    seen: dict[int, str] = {}
    for name in SPLITS:
        chosen = []
        for lineno, line in enumerate(paths[name].read_text().splitlines(), 1):
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            p = PurePosixPath(entry.replace("\\", "/"))
            hit = next((index[k] for k in (entry, p.name, p.stem) if k in index), None)
            if hit is None:
                raise DataError(f"{paths[name]}:{lineno}: {entry!r} matches no image of the dataset")
            if hit in seen:
                raise DataError(
                    f"{paths[name]}:{lineno}: {entry!r} is already in the {seen[hit]} split"
                )
            seen[hit] = name
            chosen.append(hit)
        out[name] = torch.tensor(sorted(chosen), dtype=torch.int64)
    return Split(**out)


# ----------------------------------------------------------------------------- checks

# Tried in order when a split leaves a class out: equal thirds give every class of 3 or
# more images one image in each split; without a validation split 2 images suffice.
_SUGGESTIONS = ("34/33/33", "50/0/50")


def missing_by_split(split: Split, labels: torch.Tensor, num_classes: int) -> dict[str, list[int]]:
    """Split name -> the classes that have no image in it."""
    out = {}
    for name in SPLITS:
        counts = torch.bincount(labels[split[name]], minlength=num_classes)
        out[name] = [c for c in range(num_classes) if counts[c] == 0]
    return out


def split_problem(split: Split, labels: torch.Tensor, classes: list[str],
                  allow_empty_val: bool) -> str | None:
    """What makes ``split`` unusable for training, or None.

    Training needs two classes or more and every class in every split: the model is
    selected on val and scored on test. A val split that is empty for every class is
    allowed when asked for (``allow_empty_val``: a 0 val fraction, or an empty val split
    file); the best epoch is then the one with the best training accuracy.
    """
    if len(classes) < 2:
        return (f"the dataset has only {len(classes)} class ({', '.join(classes) or 'none'}) "
                "and a classifier needs at least 2")
    missing = missing_by_split(split, labels, len(classes))
    if allow_empty_val and len(missing["val"]) == len(classes):
        missing["val"] = []
    parts = []
    for name in SPLITS:
        absent = missing[name]
        if len(absent) == len(classes):
            parts.append(f"the {name} split is empty")
        elif absent:
            names = ", ".join(classes[c] for c in absent[:5]) + (", ..." if len(absent) > 5 else "")
            parts.append(f"{len(absent)} class(es) have no image in the {name} split ({names})")
    return "; ".join(parts) or None


def suggest_fractions(labels: torch.Tensor, num_classes: int, seed: int) -> str:
    """How to get a usable split from these labels: fractions that work, or more images."""
    for text in _SUGGESTIONS:
        fractions = parse_fractions(text)
        split = stratified_split(labels, fractions, seed)
        missing = missing_by_split(split, labels, num_classes)
        if fractions[1] == 0:
            missing["val"] = []
        if not any(missing.values()):
            note = " (no validation split: the best epoch is chosen on training accuracy)" \
                if fractions[1] == 0 else ""
            return f"pass --split-fractions {text}{note}, or add images"
    smallest = int(torch.bincount(labels, minlength=num_classes).min())
    return (f"add images: the smallest class has {smallest}, and every class needs at least "
            "3 (2 with --split-fractions 50/0/50)")
