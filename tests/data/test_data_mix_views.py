"""Mixup/CutMix and the teacher's second view: drawn once, applied identically to both views."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rsdistill.data.augment import BatchAugment
from rsdistill.data.loader import Normalizer, TensorBatches
from rsdistill.data.mix import BatchMix, check_mix
from rsdistill.errors import ConfigError


def _two_views(n: int = 12, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    # The large view is the small one with every pixel doubled, so 2×2 average pooling of
    # the large view gives the small one back exactly: any misalignment between the views
    # shows as a difference.
    g = torch.Generator().manual_seed(seed)
    small = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    large = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    return small, large


def _batches(small, large, augment, mix=None, seed=0) -> TensorBatches:
    labels = torch.arange(small.shape[0]) % 3
    return TensorBatches(small, labels, torch.arange(small.shape[0]), 6, Normalizer(),
                         shuffle=True, augment=augment, mix=mix, num_classes=3,
                         generator=torch.Generator().manual_seed(seed), teacher_images=large)


@pytest.mark.parametrize("mix", [None, BatchMix("mixup", 1.0)])
def test_teacher_view_gets_the_same_flips_rotations_and_mixing(mix):
    small, large = _two_views()
    augment = BatchAugment(hflip=True, vflip=True, rot90=True, crop=False)
    for batch in _batches(small, large, augment, mix):
        assert batch.teacher_images.shape[-1] == 64 and batch.images.shape[-1] == 32
        torch.testing.assert_close(F.avg_pool2d(batch.teacher_images, 2), batch.images)


def test_crop_offsets_scale_exactly_with_the_view():
    # Each pixel holds its own row/column coordinate; the centre of a crop then names the
    # source position, which must be twice as far in the 64 px view as in the 32 px one.
    n = 16
    rows32 = torch.arange(32).view(1, 1, 32, 1).expand(n, 1, 32, 32)
    cols32 = torch.arange(32).view(1, 1, 1, 32).expand(n, 1, 32, 32)
    rows64 = torch.arange(64).view(1, 1, 64, 1).expand(n, 1, 64, 64)
    cols64 = torch.arange(64).view(1, 1, 1, 64).expand(n, 1, 64, 64)
    small = torch.cat([rows32, cols32, rows32], 1).to(torch.uint8)
    large = torch.cat([rows64, cols64, rows64], 1).to(torch.uint8)
    augment = BatchAugment(hflip=False, vflip=False, rot90=False, crop=True)
    shifts = set()
    for batch in _batches(small, large, augment):
        c32 = (batch.images[:, :2, 16, 16] * 255).round()
        c64 = (batch.teacher_images[:, :2, 32, 32] * 255).round()
        torch.testing.assert_close(c64, 2 * c32)
        shifts |= {tuple(v) for v in c32.tolist()}
    assert len(shifts) > 1  # the crop did move


def test_cutmix_pastes_the_same_relative_region_in_both_views():
    small, large = _two_views()
    augment = BatchAugment(hflip=False, vflip=False, rot90=False, crop=False)
    for batch in _batches(small, large, augment, BatchMix("cutmix", 1.0), seed=3):
        pooled = F.avg_pool2d(batch.teacher_images, 2)
        # Box edges are rounded per view: at most a one-pixel seam may differ.
        same = (pooled - batch.images).abs().amax(1) < 1e-6
        assert float(same.float().mean()) > 0.85


def test_mixed_targets_are_label_distributions_in_the_mixing_proportion():
    mix = BatchMix("mixup", 0.4)
    labels = torch.tensor([0, 1, 2, 1])
    p = mix.sample(4, torch.Generator().manual_seed(0))
    t = mix.targets(labels, 3, p, (32, 32))
    torch.testing.assert_close(t.sum(1), torch.ones(4))
    for i in range(4):
        expected = torch.zeros(3)
        expected[labels[i]] += p.lam
        expected[labels[p.perm[i]]] += 1 - p.lam
        torch.testing.assert_close(t[i], expected)


def test_cutmix_target_weight_is_the_pasted_area():
    mix = BatchMix("cutmix", 1.0)
    p = mix.sample(4, torch.Generator().manual_seed(1))
    own = torch.stack([torch.full((1, 32, 32), float(i)) for i in range(4)])
    kept = (mix.apply(own, p) == own).float().mean((1, 2, 3))
    moved = p.perm != torch.arange(4)
    assert moved.any()
    torch.testing.assert_close(kept[moved], torch.full_like(kept[moved], mix.weight(p, (32, 32))))


def test_same_generator_state_gives_the_same_mix():
    a = BatchMix("mixup", 1.0).sample(8, torch.Generator().manual_seed(5))
    b = BatchMix("mixup", 1.0).sample(8, torch.Generator().manual_seed(5))
    assert a.lam == b.lam and torch.equal(a.perm, b.perm)


@pytest.mark.parametrize("mode, alpha, needle", [("blend", 1.0, "--mix"), ("mixup", 0.0, "--mix-alpha"),
                                                 ("cutmix", float("nan"), "--mix-alpha")])
def test_bad_mix_settings_are_one_clear_error(mode, alpha, needle):
    with pytest.raises(ConfigError, match=needle):
        check_mix(mode, alpha)


def test_mixing_a_sharded_batch_is_refused():
    small, large = _two_views(4)
    with pytest.raises(ValueError, match="sharded"):
        TensorBatches(small, torch.zeros(4, dtype=torch.long), torch.arange(4), 2, Normalizer(),
                      mix=BatchMix("mixup", 1.0), num_classes=2, shard=(0, 2))


def _same_size_batches(images, teacher_augment, seed=0):
    from rsdistill.data.module import DataConfig, PreparedData
    from rsdistill.data.splits import Split

    class _Dataset:  # just what batches() reads
        pass

    ds = _Dataset()
    ds.images, ds.labels, ds.image_size, ds.num_classes = images, torch.arange(len(images)) % 3, 32, 3
    data = PreparedData(DataConfig(teacher_augment=teacher_augment), ds,
                        Split(torch.arange(len(images)), torch.arange(0), torch.arange(0)),
                        Normalizer(), BatchAugment())
    return data.batches("train", 6, train=True, generator=torch.Generator().manual_seed(seed),
                        teacher_view=(32, None))


def test_a_same_size_teacher_reads_the_students_view_by_default():
    small, _ = _two_views()
    for batch in _same_size_batches(small, "same"):
        assert batch.teacher_images is None  # the trainer feeds the teacher batch.images


def test_independent_teacher_augment_gives_the_teacher_its_own_draw():
    small, _ = _two_views()
    differs = []
    for batch in _same_size_batches(small, "independent"):
        assert batch.teacher_images.shape == batch.images.shape
        # The same scenes (the dihedral group and crops keep the pixel multiset up to the
        # reflect padding), but not the same augmented picture.
        differs.append(not torch.equal(batch.teacher_images, batch.images))
        torch.testing.assert_close(batch.teacher_images.mean((1, 2, 3)),
                                   batch.images.mean((1, 2, 3)), atol=0.05, rtol=0)
    assert any(differs)


def test_independent_teacher_augment_applies_to_the_high_resolution_view():
    small, large = _two_views()
    augment = BatchAugment(hflip=True, vflip=True, rot90=True, crop=False)
    labels = torch.arange(small.shape[0]) % 3
    batches = TensorBatches(small, labels, torch.arange(small.shape[0]), 6, Normalizer(),
                            shuffle=True, augment=augment, teacher_images=large,
                            generator=torch.Generator().manual_seed(0),
                            independent_teacher_augment=True)
    mismatched = 0
    for batch in batches:
        pooled = F.avg_pool2d(batch.teacher_images, 2)
        mismatched += int(((pooled - batch.images).abs().amax((1, 2, 3)) > 1e-6).sum())
    assert mismatched > 0


def test_unknown_teacher_augment_is_one_clear_error(tmp_path):
    from rsdistill.data.module import DataConfig, prepare_data

    with pytest.raises(ConfigError, match="--teacher-augment must be one of same, independent"):
        prepare_data(DataConfig(data_root=str(tmp_path), teacher_augment="shuffled"), progress=False)


def test_a_same_size_teacher_with_its_own_statistics_gets_its_own_normalisation():
    # A pretrained teacher (mean/std of its weights) teaching a scratch student at the same
    # size reads the same augmented pictures, normalised its own way.
    from rsdistill.data.module import DataConfig, PreparedData
    from rsdistill.data.splits import Split

    small, _ = _two_views()

    class _Dataset:
        pass

    ds = _Dataset()
    ds.images, ds.labels, ds.image_size, ds.num_classes = small, torch.arange(len(small)) % 3, 32, 3
    data = PreparedData(DataConfig(), ds, Split(torch.arange(len(small)), torch.arange(0),
                                                torch.arange(0)),
                        Normalizer(), BatchAugment(), views={(32, None): ds})
    teacher_norm = Normalizer((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    batches = data.batches("train", 6, train=True, generator=torch.Generator().manual_seed(0),
                           teacher_view=(32, None), teacher_normalizer=teacher_norm)
    for batch in batches:
        assert batch.teacher_images is not None
        # Same scenes, same draw: the teacher's input is the student's re-normalised.
        torch.testing.assert_close(batch.teacher_images, (batch.images - 0.5) / 0.5)
