"""View recipes: a view is regenerated exactly from the uint8 tensor and its recipe, at any
resolution, and mixing strength (--mix-prob, --crop-pad) does what it says."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rsdistill.data.augment import BatchAugment
from rsdistill.data.loader import Normalizer
from rsdistill.data.mix import BatchMix
from rsdistill.data.module import DataConfig, check_data_config
from rsdistill.data.recipes import (
    RecipeBatches, ViewRecipes, mixed_targets, own_weight, render, sample_round,
)
from rsdistill.errors import ConfigError

AUGMENT = BatchAugment(hflip=True, vflip=True, rot90=True, crop=True)


def _images(n: int = 20, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    # The 64 px view is the 32 px one with every pixel doubled: 2×2 average pooling of a
    # 64 px rendering gives the 32 px rendering back exactly when the recipe is relative.
    g = torch.Generator().manual_seed(0)
    small = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return small, small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def _round(mode: str = "mixup", prob: float = 1.0, n: int = 20, seed: int = 1) -> ViewRecipes:
    return sample_round(torch.arange(n), AUGMENT, BatchMix(mode, 1.0, prob),
                        torch.Generator().manual_seed(seed))


def test_one_recipe_makes_the_same_view_at_the_teachers_and_the_students_size():
    small, large = _images()
    recipes = _round("mixup")
    pos = torch.arange(len(recipes))
    assert (recipes.partner != pos).any()
    student = render(recipes, pos, small, Normalizer(), AUGMENT)
    teacher = render(recipes, pos, large, Normalizer(), AUGMENT)
    assert teacher.shape[-1] == 64 and student.shape[-1] == 32
    # Reflect padding mirrors about the edge pixel, which differs between the two sizes:
    # the crop's padded border (at most 4 px here) is left out of the comparison.
    torch.testing.assert_close(F.avg_pool2d(teacher, 2)[..., 4:-4, 4:-4], student[..., 4:-4, 4:-4])


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_a_view_is_its_augmented_image_mixed_with_its_partners(mode):
    small, _ = _images()
    recipes = _round(mode)
    pos = torch.tensor([3, 7, 11])
    got = render(recipes, pos, small, Normalizer(), AUGMENT)
    own = AUGMENT.apply(Normalizer()(small[recipes.rows[pos]]), recipes.params(pos))
    partner = recipes.partner[pos]
    other = AUGMENT.apply(Normalizer()(small[recipes.rows[partner]]), recipes.params(partner))
    w = own_weight(recipes, pos, 32)
    for i in range(pos.numel()):
        if mode == "mixup":
            expect = own[i] * recipes.lam[pos[i]] + other[i] * (1 - recipes.lam[pos[i]])
            torch.testing.assert_close(got[i], expect)
        else:  # every pixel is the own image's or the partner's, in the box's share
            from_own = (got[i] == own[i]).all(0).float().mean()
            assert torch.all((got[i] == own[i]) | (got[i] == other[i]))
            if partner[i] != pos[i]:
                assert abs(float(from_own) - float(w[i])) < 1e-6 or torch.equal(own[i], other[i])


def test_mix_prob_leaves_the_other_views_whole_and_their_targets_one_hot():
    labels = torch.arange(200) % 5
    whole = _round("mixup", prob=0.0, n=200)
    assert torch.equal(whole.partner, torch.arange(200)) and bool((whole.lam == 1).all())
    half = _round("cutmix", prob=0.5, n=200)
    mixed = half.partner != torch.arange(200)
    assert 60 < int(mixed.sum()) < 140
    assert torch.isnan(half.box[~mixed]).all() and not torch.isnan(half.box[mixed]).any()
    targets = mixed_targets(labels, half, torch.arange(200), 32, 5)
    torch.testing.assert_close(targets.sum(1), torch.ones(200))
    torch.testing.assert_close(targets[~mixed], F.one_hot(labels[~mixed], 5).float())


def test_batch_mix_prob_zero_mixes_nothing():
    x = torch.rand(8, 3, 8, 8)
    mix = BatchMix("mixup", 1.0, prob=0.0)
    p = mix.sample(8, torch.Generator().manual_seed(0))
    torch.testing.assert_close(mix.apply(x, p), x)


def test_a_round_of_batches_covers_every_view_once_with_its_own_logits():
    small, _ = _images()
    recipes = _round("mixup")
    logits = torch.arange(len(recipes)).float().unsqueeze(1).repeat(1, 4)  # row i names view i
    labels = torch.arange(20) % 4
    batches = RecipeBatches(recipes, logits, small, labels, 6, Normalizer(), AUGMENT,
                            torch.Generator().manual_seed(3), 4, mixing=True)
    seen = []
    for batch in batches:
        pos = batch.teacher_logits[:, 0].long()
        torch.testing.assert_close(batch.images, render(recipes, pos, small, Normalizer(), AUGMENT))
        assert torch.equal(batch.index, recipes.rows[pos])
        assert batch.targets.shape == (pos.numel(), 4)
        seen += pos.tolist()
    assert sorted(seen) == list(range(20))


def test_recipes_survive_a_round_trip_through_their_dict():
    recipes = _round("cutmix")
    back = ViewRecipes.from_dict(recipes.to_dict())
    for name, value in recipes.to_dict().items():
        assert torch.equal(getattr(back, name), value) or torch.allclose(
            getattr(back, name), value, equal_nan=True), name


@pytest.mark.parametrize("field, value, needle", [
    ("mix_prob", 1.5, "--mix-prob"), ("crop_pad", 0.7, "--crop-pad"),
    ("mix_prob", float("nan"), "--mix-prob"),
])
def test_strength_options_out_of_range_are_refused(field, value, needle):
    with pytest.raises(ConfigError, match=needle):
        check_data_config(DataConfig(**{field: value}))


def test_crop_pad_sets_the_largest_shift():
    x = torch.arange(32).view(1, 1, 1, 32).expand(64, 1, 32, 32).float()
    mild = BatchAugment(hflip=False, vflip=False, rot90=False, crop=True, pad_fraction=0.0625)
    shifted = mild(x, torch.Generator().manual_seed(0))[:, 0, 16, 16] - 16
    assert shifted.abs().max() == 2 and shifted.abs().max() > 0
