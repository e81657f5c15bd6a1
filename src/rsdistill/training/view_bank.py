"""A view bank: the teacher's logits for R rounds of augmented views, kept on disk.

Function matching wants the teacher's prediction on every crop and mixture the student
sees, which are endless; a bank fixes R rounds of them (one view of each training image
per round, :mod:`rsdistill.data.recipes`) and pays for R teacher passes once. Each round
is stored with its recipes, so a student regenerates the pixels from the cached uint8
tensor and trains with no teacher at all: epoch e reads round e mod R, in its own
shuffled order. Students of any seed and architecture that share the teacher, the views
and the augmentation settings reuse the same rounds.

Rounds are written one by one, atomically: a build that is killed continues at the first
round missing. A round depends only on the key and its number, so a bank of 8 rounds is
the first 8 rounds of a bank of 30 with the same key.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from rsdistill.data.augment import BatchAugment
from rsdistill.data.cache import read_cache
from rsdistill.data.loader import Normalizer
from rsdistill.data.mix import BatchMix
from rsdistill.data.recipes import ViewRecipes, render, sample_round
from rsdistill.io import atomic_torch_save, os_error_of

log = logging.getLogger(__name__)

BANK_SUBDIR = "view-bank"
_BATCH = 128


@dataclass
class ViewBank:
    recipes: list[ViewRecipes]
    logits: list[torch.Tensor]  # per round: V×K float32, the teacher's logits of each view
    seconds: float  # spent on teacher passes in this run (0: every round was read)
    computed: int  # rounds this run computed (the others were read)

    @property
    def rounds(self) -> int:
        return len(self.recipes)

    def round_of(self, epoch: int) -> int:
        return epoch % self.rounds


def round_generator(seed: int, round_no: int) -> torch.Generator:
    """The random stream of one round: fixed by the bank seed and the round alone."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(round_no))


def round_path(folder: Path, key: str, round_no: int) -> Path:
    return Path(folder) / BANK_SUBDIR / key / f"round-{round_no:04d}.pt"


def round_problem(entry, rows: torch.Tensor) -> str | None:
    """Why a stored entry cannot be the round of views of ``rows``, or None. Its name is
    a hash that covers the rows, but its content is only what the disk holds."""
    recipes = entry.get("recipes") if isinstance(entry, dict) else None
    if not isinstance(recipes, dict):
        return "it holds no view recipes"
    names = [f.name for f in fields(ViewRecipes)]
    missing = [n for n in names if not isinstance(recipes.get(n), torch.Tensor)]
    if missing:
        return f"its view recipes lack {', '.join(missing)}"
    stored = recipes["rows"]
    if stored.shape != rows.shape or stored.dtype != rows.dtype or not torch.equal(stored, rows):
        return "its views are of other training images"
    uneven = [n for n in names if recipes[n].shape[:1] != rows.shape]
    if uneven:
        return f"its view recipes {', '.join(uneven)} are not one per view"
    logits = entry.get("logits")
    if not isinstance(logits, torch.Tensor) or logits.dtype != torch.float32 \
            or logits.dim() != 2 or logits.shape[0] != rows.numel():
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else "none"
        return f"its logits are {shape}, not float32 ({rows.numel()}, classes)"
    return None


def _read(path: Path, rows: torch.Tensor) -> tuple[ViewRecipes, torch.Tensor] | None:
    """A stored round, or None: absent, or unusable (then named in one warning and
    labelled again)."""
    entry = read_cache(path, lambda e: round_problem(e, rows), what="view bank round",
                       redo="labelling it again with the teacher")
    return None if entry is None else (ViewRecipes.from_dict(entry["recipes"]), entry["logits"])


def label_round(teacher: Callable[[torch.Tensor], torch.Tensor], recipes: ViewRecipes,
                images: torch.Tensor, normalizer: Normalizer, augment: BatchAugment,
                prepare: Callable[[torch.Tensor], torch.Tensor], autocast,
                step: Callable[[], None] = lambda: None) -> torch.Tensor:
    """The teacher's logits (float32, CPU) of every view of a round, made from ``images``
    (the teacher's view) exactly as the student's are made from its own."""
    out = []
    with torch.inference_mode():
        for begin in range(0, len(recipes), _BATCH):
            pos = torch.arange(begin, min(begin + _BATCH, len(recipes)))
            x = render(recipes, pos, images, normalizer, augment)
            with autocast():
                out.append(teacher(prepare(x)).float().cpu())
            step()
    return torch.cat(out)


def build_bank(folder: Path | None, key: str | None, rounds: int, seed: int,
               rows: torch.Tensor, augment: BatchAugment, mix: BatchMix,
               label: Callable[[ViewRecipes, Callable[[], None]], torch.Tensor],
               progress: bool = True) -> ViewBank:
    """Reads the rounds stored under ``key`` and computes the missing ones with
    ``label(recipes, step)``, storing each as soon as it is done (``key`` None: nothing is
    read or kept)."""
    recipes, logits, seconds, computed = [], [], 0.0, 0
    chunks = -(-rows.numel() // _BATCH)
    bar = tqdm(total=rounds * chunks, desc="view bank", leave=False,
               disable=None if progress else True)
    try:
        for r in range(rounds):
            path = round_path(folder, key, r) if key is not None else None
            stored = _read(path, rows) if path is not None else None
            if stored is None:
                start = time.perf_counter()
                made = sample_round(rows, augment, mix, round_generator(seed, r))
                stored = made, label(made, lambda: bar.update(1))
                seconds += time.perf_counter() - start
                computed += 1
                if path is not None:
                    _keep(path, *stored)
            else:
                bar.update(chunks)
            recipes.append(stored[0])
            logits.append(stored[1])
    finally:
        bar.close()
    return ViewBank(recipes, logits, seconds, computed)


def _keep(path: Path, recipes: ViewRecipes, logits: torch.Tensor) -> None:
    """A disk that refuses a round only costs the next run its teacher pass again."""
    try:
        atomic_torch_save({"recipes": recipes.to_dict(), "logits": logits}, path)
    except Exception as exc:
        if os_error_of(exc) is None:
            raise
        log.info("view bank round not kept (%s); the next run computes it again", exc)
