"""Batch augmentation, scaling/standardisation and tensor batching."""

from __future__ import annotations

import pytest
import torch

from rsdistill.data import (
    AugmentParams, BatchAugment, DataConfig, Normalizer, TensorBatches, prepare_data,
)

N, C, S = 16, 3, 16


def batch(seed=0, n=N, size=S):
    """Float batch whose pixel values are all distinct, so equality means same position."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n * C * size * size, generator=g).float().view(n, C, size, size)


def params(n=N, hflip=None, vflip=None, rot90=None, shift=None):
    off = torch.zeros(n, dtype=torch.bool)
    return AugmentParams(
        hflip=off if hflip is None else hflip,
        vflip=off if vflip is None else vflip,
        rot90=torch.zeros(n, dtype=torch.int64) if rot90 is None else rot90,
        shift=torch.full((n, 2), 0.5) if shift is None else shift,
    )


def alternate(n=N):
    return torch.arange(n) % 2 == 0


def sorted_values(x):
    return torch.sort(x.flatten(1), dim=1).values


def dihedral(img):
    """The 8 flips/rotations of one C×H×W image."""
    out = []
    for k in range(4):
        r = torch.rot90(img, k, dims=(1, 2))
        out += [r, r.flip(2)]
    return out


# ----------------------------------------------------------------------------- single ops

def test_hflip_flips_exactly_the_selected_images():
    x = batch()
    sel = alternate()
    y = BatchAugment(hflip=True, vflip=False, rot90=False, crop=False).apply(x, params(hflip=sel))
    assert torch.equal(y[sel], x[sel].flip(3))
    assert torch.equal(y[~sel], x[~sel])
    assert torch.equal(sorted_values(y), sorted_values(x))  # a permutation of pixels


def test_vflip_flips_exactly_the_selected_images():
    x = batch()
    sel = alternate()
    y = BatchAugment(hflip=False, vflip=True, rot90=False, crop=False).apply(x, params(vflip=sel))
    assert torch.equal(y[sel], x[sel].flip(2))
    assert torch.equal(y[~sel], x[~sel])
    assert torch.equal(sorted_values(y), sorted_values(x))


def test_rot90_rotates_each_image_by_its_own_k():
    x = batch()
    k = torch.arange(N) % 4
    y = BatchAugment(hflip=False, vflip=False, rot90=True, crop=False).apply(x, params(rot90=k))
    for i in range(N):
        assert torch.equal(y[i], torch.rot90(x[i], int(k[i]), dims=(1, 2)))
    assert torch.equal(sorted_values(y), sorted_values(x))
    assert not torch.equal(y, x)


def test_apply_does_not_modify_its_input():
    x = batch()
    keep = x.clone()
    aug = BatchAugment()
    aug(x, torch.Generator().manual_seed(0))
    assert torch.equal(x, keep)


def test_crop_centre_offset_is_identity():
    x = batch()
    y = BatchAugment(hflip=False, vflip=False, rot90=False, crop=True).apply(x, params())
    assert torch.equal(y, x)


def test_crop_translates_with_reflect_padding():
    x = batch()
    aug = BatchAugment(hflip=False, vflip=False, rot90=False, crop=True, pad_fraction=0.25)
    pad = 4  # 0.25 × 16
    shift = torch.zeros(N, 2)
    shift[1::2] = 1.0  # odd images: the opposite corner
    y = aug.apply(x, params(shift=shift))
    assert y.shape == x.shape
    even, odd = slice(0, None, 2), slice(1, None, 2)
    # Offset 0: the image moves down/right by pad; the border is its reflection.
    assert torch.equal(y[even, :, pad:, pad:], x[even, :, :-pad, :-pad])
    for r in range(pad):
        assert torch.equal(y[even, :, r, pad:], x[even, :, pad - r, :-pad])
        assert torch.equal(y[even, :, pad:, r], x[even, :, :-pad, pad - r])
    # Offset 2·pad: the image moves up/left by pad.
    assert torch.equal(y[odd, :, :-pad, :-pad], x[odd, :, pad:, pad:])
    for r in range(pad):
        assert torch.equal(y[odd, :, S - 1 - r, :-pad], x[odd, :, S - 1 - pad + r, pad:])


def test_crop_takes_values_only_from_its_own_image():
    x = batch()
    aug = BatchAugment(hflip=False, vflip=False, rot90=False, crop=True)
    y = aug.apply(x, aug.sample(N, torch.Generator().manual_seed(1)))
    for i in range(N):
        assert torch.isin(y[i], x[i]).all()
        # Reflect-padding a 16 px image by 2 keeps most pixels.
        assert torch.isin(x[i], y[i]).float().mean() > 0.7


@pytest.mark.parametrize("size", [16, 32])
def test_default_pad_is_an_eighth_of_the_size(size):
    x = batch(size=size, n=2)
    aug = BatchAugment(hflip=False, vflip=False, rot90=False, crop=True)
    y = aug.apply(x, params(n=2, shift=torch.zeros(2, 2)))
    pad = size // 8
    assert torch.equal(y[:, :, pad:, pad:], x[:, :, :-pad, :-pad])
    assert not torch.equal(y[:, :, pad - 1:, pad - 1:], x[:, :, :-pad + 1, :-pad + 1])


# ----------------------------------------------------------------------------- combined

def test_flips_and_rotations_together_give_a_dihedral_transform_of_each_image():
    x = batch()
    aug = BatchAugment(crop=False)
    y = aug(x, torch.Generator().manual_seed(3))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(sorted_values(y), sorted_values(x))
    for i in range(N):
        assert any(torch.equal(y[i], t) for t in dihedral(x[i]))
    assert not torch.equal(y, x)


def test_full_augmentation_keeps_shape_and_dtype():
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        x = torch.rand(5, 3, 32, 32).to(dtype)
        y = BatchAugment()(x, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and y.dtype == dtype


def test_same_generator_seed_same_augmentation_different_seed_different():
    x = batch()
    aug = BatchAugment()
    a = aug(x, torch.Generator().manual_seed(7))
    b = aug(x, torch.Generator().manual_seed(7))
    c = aug(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_one_draw_applies_consistently_at_two_resolutions():
    # Teacher and student views of the same scenes: same flips/rotations and the same
    # relative crop offset at 16 and 32 px.
    small = batch(size=16, n=4)
    big = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    aug = BatchAugment(crop=False)
    p = aug.sample(4, torch.Generator().manual_seed(2))
    y_small, y_big = aug.apply(small, p), aug.apply(big, p)
    assert torch.equal(y_big[:, :, ::2, ::2], y_small)


# ----------------------------------------------------------------------------- disabled ops

def test_disabled_ops_leave_data_unchanged_even_with_active_params():
    x = batch()
    everything = params(hflip=torch.ones(N, dtype=torch.bool), vflip=torch.ones(N, dtype=torch.bool),
                        rot90=torch.ones(N, dtype=torch.int64), shift=torch.zeros(N, 2))
    off = BatchAugment(hflip=False, vflip=False, rot90=False, crop=False)
    assert not off.enabled
    assert torch.equal(off.apply(x, everything), x)


@pytest.mark.parametrize("op", ["hflip", "vflip", "rot90", "crop"])
def test_each_op_can_be_switched_off(op):
    aug = BatchAugment(**{op: False})
    p = aug.sample(64, torch.Generator().manual_seed(0))
    if op == "hflip":
        assert not p.hflip.any() and p.vflip.any()
    elif op == "vflip":
        assert not p.vflip.any() and p.hflip.any()
    elif op == "rot90":
        assert (p.rot90 == 0).all() and p.hflip.any()
    else:
        assert torch.equal(p.shift, torch.full((64, 2), 0.5))
        # No crop: every image is a flip/rotation of itself, pixels only permuted.
        x = batch(n=64)
        assert torch.equal(sorted_values(aug.apply(x, p)), sorted_values(x))


def test_only_the_enabled_op_changes_the_batch():
    x = batch()
    for op in ("hflip", "vflip", "rot90", "crop"):
        aug = BatchAugment(**{o: o == op for o in ("hflip", "vflip", "rot90", "crop")})
        y = aug(x, torch.Generator().manual_seed(0))
        assert not torch.equal(y, x), op
        if op != "crop":
            assert torch.equal(sorted_values(y), sorted_values(x)), op


# ----------------------------------------------------------------------------- Normalizer

def test_normalizer_scales_uint8_to_unit_interval():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    y = Normalizer()(x)
    assert y.dtype == torch.float32
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([0.0, 0.2, 1.0]))
    assert x.dtype == torch.uint8  # input untouched


def test_normalizer_standardises_per_channel():
    norm = Normalizer(mean=(0.5, 0.0, 1.0), std=(0.5, 2.0, 0.25))
    x = torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)
    assert torch.allclose(norm(x).flatten(), torch.tensor([1.0, 0.5, 0.0]))


def test_normalizer_fit_gives_zero_mean_unit_std():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50, 3, 8, 8), generator=g, dtype=torch.uint8)
    images[:, 1] //= 4  # channels with different statistics
    norm = Normalizer.fit(images)
    y = norm(images)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(y.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4)
    assert norm.mean[1] < norm.mean[0]


# ----------------------------------------------------------------------------- PreparedData

@pytest.fixture
def prepared(build_dataset, cache_dir):
    def make(**kw):
        built = build_dataset(["alpha", "beta", "gamma"], per_class=kw.pop("per_class", 10))
        cfg = DataConfig(dataset="folder", data_root=str(built.data_root), image_size=16,
                         cache_dir=str(cache_dir), workers=1, **kw)
        return prepare_data(cfg, progress=False)

    return make


def test_standardisation_uses_training_split_only(prepared):
    data = prepared(standardize=True)
    images, split = data.dataset.images, data.split
    expected = Normalizer.fit(images[split.train])
    assert data.normalizer.mean == pytest.approx(expected.mean, abs=1e-6)
    assert data.normalizer.std == pytest.approx(expected.std, abs=1e-6)
    everything = Normalizer.fit(images)
    held_out = Normalizer.fit(images[torch.cat([split.val, split.test])])
    assert data.normalizer.mean != pytest.approx(everything.mean, abs=1e-5)
    assert data.normalizer.mean != pytest.approx(held_out.mean, abs=1e-5)
    assert data.describe()["normalization"]["mean"] == data.normalizer.mean


def test_without_standardisation_images_are_only_scaled(prepared):
    data = prepared()
    assert data.normalizer.mean is None and data.normalizer.std is None
    b = next(iter(data.batches("test", 4)))
    assert torch.equal(b.images, data.dataset.images[b.index].float() / 255)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_evaluation_batches_are_unaugmented_ordered_and_deterministic(prepared, split):
    data = prepared(standardize=True)
    idx = data.split[split]
    loader = data.batches(split, 4, train=False)
    assert len(loader) == -(-idx.numel() // 4)
    first = list(loader)
    second = list(data.batches(split, 4, train=False, generator=torch.Generator().manual_seed(9)))
    assert torch.equal(torch.cat([b.index for b in first]), idx)
    for a, b in zip(first, second, strict=True):
        assert a.params is None
        assert torch.equal(a.index, b.index) and torch.equal(a.images, b.images)
        assert torch.equal(a.images, data.normalizer(data.dataset.images[a.index]))
        assert torch.equal(a.labels, data.dataset.labels[a.index])
        assert a.images.dtype == torch.float32


def test_training_batches_are_shuffled_augmented_and_seeded(prepared):
    data = prepared(per_class=20)
    train = data.split.train

    def epoch(seed):
        return list(data.batches("train", 8, train=True,
                                 generator=torch.Generator().manual_seed(seed)))

    a, b, c = epoch(0), epoch(0), epoch(1)
    seen = torch.cat([x.index for x in a])
    assert torch.equal(torch.sort(seen).values, train)  # each training image once
    assert not torch.equal(seen, train)  # shuffled
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.index, y.index) and torch.equal(x.images, y.images)
    assert not torch.equal(torch.cat([x.index for x in c]), seen)
    plain = [data.normalizer(data.dataset.images[x.index]) for x in a]
    assert any(not torch.equal(x.images, p) for x, p in zip(a, plain))
    for x in a:
        assert x.params is not None
        assert x.images.shape == (x.index.numel(), 3, 16, 16)
        assert torch.equal(x.labels, data.dataset.labels[x.index])


def test_training_batches_with_augmentation_disabled_are_plain(prepared):
    data = prepared(hflip=False, vflip=False, rot90=False, crop=False)
    for x in data.batches("train", 8, train=True, generator=torch.Generator().manual_seed(0)):
        assert x.params is None
        assert torch.equal(x.images, data.normalizer(data.dataset.images[x.index]))


def test_tensor_batches_drop_last():
    images = torch.zeros(10, 3, 4, 4, dtype=torch.uint8)
    labels = torch.arange(10)
    tb = TensorBatches(images, labels, torch.arange(10), 4, Normalizer(), drop_last=True)
    assert len(tb) == 2
    assert [b.index.numel() for b in tb] == [4, 4]
    tb = TensorBatches(images, labels, torch.arange(10), 4, Normalizer())
    assert [b.index.numel() for b in tb] == [4, 4, 2]


def test_describe_has_the_required_keys(prepared):
    info = prepared().describe()
    for key in ("classes", "counts", "total", "splits"):
        assert key in info
    assert info["classes"] == ["alpha", "beta", "gamma"]
    assert info["counts"] == {"alpha": 10, "beta": 10, "gamma": 10}
    assert info["total"] == 30
    assert info["splits"] == {"train": 18, "val": 6, "test": 6}
