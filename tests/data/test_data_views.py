"""Views of a dataset: the scene at another size, decoded there or upsampled from a
smaller one (what a teacher reads under resolution-consistent teaching)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rsdistill.data.module import DataConfig, prepare_data
from rsdistill.data.views import resize_uint8, upsampled_view, view_key
from rsdistill.errors import ConfigError


def test_view_keys_are_canonical_and_only_upsample():
    assert view_key(32) == (32, None) == view_key(32, 32)
    assert view_key(128, 32) == (128, 32)
    with pytest.raises(ConfigError, match="source must be smaller"):
        view_key(32, 64)


def test_resize_is_bicubic_rounded_and_clipped_to_uint8():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8, generator=g)
    out = resize_uint8(images, 32)
    assert out.dtype == torch.uint8 and out.shape == (3, 3, 32, 32)
    expected = F.interpolate(images.float(), size=(32, 32), mode="bicubic", align_corners=False)
    assert torch.equal(out, expected.round().clamp(0, 255).to(torch.uint8))
    # Bicubic overshoots next to hard edges; the clip keeps it a valid image.
    edge = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    edge[..., 2:] = 255
    assert resize_uint8(edge, 16).max() == 255 and resize_uint8(edge, 16).min() == 0


def test_prepare_data_builds_the_upsampled_views_from_the_small_decode(tiny_tree3, tiny_cache):
    cfg = DataConfig(dataset="folder", data_root=str(tiny_tree3), image_size=32, source_size=8,
                     cache_dir=str(tiny_cache), workers=1)
    data = prepare_data(cfg, extra_views=((32, None),), progress=False)
    small = prepare_data(DataConfig(**{**cfg.to_dict(), "image_size": 8, "source_size": None}),
                         progress=False)
    assert data.view == (32, 8) and data.dataset.image_size == 32
    assert torch.equal(data.dataset.images, resize_uint8(small.dataset.images, 32))
    assert torch.equal(data.dataset.labels, small.dataset.labels)
    # The native 32 px view is a different picture: it holds detail the 8 px one lost.
    native = data.views[(32, None)].images
    assert native.shape == data.dataset.images.shape and not torch.equal(native, data.dataset.images)
    assert data.describe()["source_size"] == 8


def test_upsampled_view_keeps_everything_but_the_pixels(tiny_tree3, tiny_cache):
    small = prepare_data(DataConfig(dataset="folder", data_root=str(tiny_tree3), image_size=8,
                                    cache_dir=str(tiny_cache), workers=1), progress=False).dataset
    big = upsampled_view(small, 24)
    assert big.image_size == 24 and big.files == small.files and big.classes == small.classes
    assert big.cache_path is None


@pytest.mark.parametrize("bad, needle", [({"teacher_view": "native"}, "--teacher-view"),
                                         ({"source_size": 0}, "--source-size"),
                                         ({"source_size": 64}, "source must be smaller")])
def test_bad_view_options_fail_before_decoding(tmp_path, bad, needle):
    with pytest.raises(ConfigError, match=needle):
        prepare_data(DataConfig(dataset="folder", data_root=str(tmp_path / "none"), **bad),
                     progress=False)
