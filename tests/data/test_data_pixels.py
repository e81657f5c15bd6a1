"""High bit depth, float and multi-band images (issue 16, item 5): real files of each kind,
written here by Pillow or tifffile, decoded by the real loader and compared pixel by pixel
with the documented scaling (16-bit: v >> 8; signed: offset to 0 first; float: [0, 1];
more than three bands: the first three)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from rsdistill.data import load_dataset
from rsdistill.data.pixels import NOTE_EXTRA_BANDS, NOTE_FLOAT_CLIPPED, scale_to_uint8

SIZE = 4  # images are written SIZE×SIZE and loaded at SIZE: no resize, so pixels are exact
RNG = np.random.default_rng(16)

U16_EDGES = np.array([0, 255, 256, 257, 32767, 32768, 65280, 65535], dtype=np.uint16)


def u16(bands: int | None = None) -> np.ndarray:
    shape = (SIZE, SIZE) if bands is None else (SIZE, SIZE, bands)
    arr = RNG.integers(0, 65536, shape, dtype=np.uint16)
    arr.reshape(-1)[:U16_EDGES.size] = U16_EDGES  # the boundaries of the rule, every time
    return arr


def grey(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[..., None], 3, axis=2)


def top8(arr: np.ndarray) -> np.ndarray:
    return (arr >> 8).astype(np.uint8)


def unit_float(arr: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(np.nan_to_num(arr, nan=0.0), 0, 1) * 255).astype(np.uint8)


def pil_i16(path):
    arr = u16()
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode == "I;16"
    return grey(top8(arr)), set()


def pil_i16b(path):
    arr = u16()
    Image.frombytes("I;16B", (SIZE, SIZE), arr.astype(">u2").tobytes()).save(path)
    assert Image.open(path).mode == "I;16B"
    return grey(top8(arr)), set()


def pil_png16(path):
    arr = u16()
    Image.fromarray(arr).save(path)
    return grey(top8(arr)), set()


def pil_int32(path):
    arr = RNG.integers(-2**31, 2**31 - 1, (SIZE, SIZE), dtype=np.int64).astype(np.int32)
    arr.reshape(-1)[:4] = [-2**31, -1, 0, 2**31 - 1]
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode == "I"
    return grey(((arr.astype(np.int64) + 2**31) >> 24).astype(np.uint8)), set()


def tif_int16(path):
    arr = RNG.integers(-32768, 32768, (SIZE, SIZE), dtype=np.int64).astype(np.int16)
    arr.reshape(-1)[:4] = [-32768, -1, 0, 32767]
    tifffile.imwrite(path, arr, photometric="minisblack")
    return grey(((arr.astype(np.int64) + 32768) >> 8).astype(np.uint8)), set()


def tif_uint32(path):
    arr = RNG.integers(0, 2**32, (SIZE, SIZE), dtype=np.uint64).astype(np.uint32)
    tifffile.imwrite(path, arr, photometric="minisblack")
    return grey((arr >> 24).astype(np.uint8)), set()


def pil_float(path):
    arr = RNG.random((SIZE, SIZE)).astype(np.float32)
    arr.reshape(-1)[:8] = [0, 0.5, 1, 0.25, -1, 2, np.nan, 1 / 255]
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode == "F"
    return grey(unit_float(arr)), {NOTE_FLOAT_CLIPPED}


def pil_float_in_range(path):
    arr = RNG.random((SIZE, SIZE)).astype(np.float32)
    Image.fromarray(arr).save(path)
    return grey(unit_float(arr)), set()


def tif_rgb16(path):
    arr = u16(3)
    tifffile.imwrite(path, arr, photometric="rgb")
    return top8(arr), set()


def tif_rgb16_planes(path):
    arr = u16(3)
    tifffile.imwrite(path, np.moveaxis(arr, 2, 0).copy(), photometric="rgb",
                     planarconfig="separate")
    return top8(arr), set()


def tif_rgbn16(path):  # GDAL's default layout: grey + 3 unspecified extra samples
    arr = u16(4)
    tifffile.imwrite(path, arr, photometric="minisblack", planarconfig="contig")
    return top8(arr[..., :3]), {NOTE_EXTRA_BANDS}


def tif_rgbn16_planes(path):
    arr = u16(4)
    tifffile.imwrite(path, np.moveaxis(arr, 2, 0).copy(), photometric="minisblack",
                     planarconfig="separate")
    return top8(arr[..., :3]), {NOTE_EXTRA_BANDS}


def tif_rgb_plus_nir16(path):  # RGB photometric, the 4th band declared "unspecified"
    arr = u16(4)
    tifffile.imwrite(path, arr, photometric="rgb", extrasamples=["unspecified"])
    return top8(arr[..., :3]), {NOTE_EXTRA_BANDS}


def tif_rgba16(path):  # the 4th band is alpha: dropped without a note
    arr = u16(4)
    tifffile.imwrite(path, arr, photometric="rgb", extrasamples=["unassalpha"])
    return top8(arr[..., :3]), set()


def tif_five_bands16(path):
    arr = u16(5)
    tifffile.imwrite(path, arr, photometric="minisblack", planarconfig="contig")
    return top8(arr[..., :3]), {NOTE_EXTRA_BANDS}


def tif_two_bands16(path):
    arr = u16(2)
    tifffile.imwrite(path, arr, photometric="minisblack", planarconfig="contig")
    return grey(top8(arr[..., 0])), {NOTE_EXTRA_BANDS}


def tif_rgbn_float(path):
    arr = RNG.random((SIZE, SIZE, 4)).astype(np.float32)
    tifffile.imwrite(path, arr, photometric="minisblack", planarconfig="contig")
    return unit_float(arr[..., :3]), {NOTE_EXTRA_BANDS}


def tif_rgb_float_out_of_range(path):
    arr = (RNG.random((SIZE, SIZE, 3)) * 3000).astype(np.float32)  # reflectance x 10000
    tifffile.imwrite(path, arr, photometric="rgb")
    return unit_float(arr), {NOTE_FLOAT_CLIPPED}


def tif_rgbn8(path):
    arr = RNG.integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint8)
    tifffile.imwrite(path, arr, photometric="rgb", extrasamples=["unspecified"])
    return arr[..., :3].copy(), {NOTE_EXTRA_BANDS}


def pil_rgba8(path):
    arr = RNG.integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint8)
    Image.fromarray(arr, "RGBA").save(path)
    return arr[..., :3].copy(), set()


def pil_rgb8(path):  # the common case must not change
    arr = RNG.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return arr, set()


KINDS = {f.__name__: f for f in (
    pil_i16, pil_i16b, pil_png16, pil_int32, tif_int16, tif_uint32, pil_float,
    pil_float_in_range, tif_rgb16, tif_rgb16_planes, tif_rgbn16, tif_rgbn16_planes,
    tif_rgb_plus_nir16, tif_rgba16, tif_five_bands16, tif_two_bands16, tif_rgbn_float,
    tif_rgb_float_out_of_range, tif_rgbn8, pil_rgba8, pil_rgb8)}


def note_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and "image(s)" in r.getMessage()]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_decoded_pixels_follow_the_documented_scaling(kind, tmp_path, caplog):
    root = tmp_path / "data"
    expected = {}
    for cls in ("one", "two"):
        (root / cls).mkdir(parents=True)
        ext = ".png" if kind.startswith("pil_png") else ".tif"
        path = root / cls / f"{kind}{ext}"
        expected[f"{cls}/{path.name}"], notes = KINDS[kind](path)
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("folder", root, SIZE, cache_dir=tmp_path / "cache", workers=1,
                          progress=False)
    assert ds.files == sorted(expected)
    for i, name in enumerate(ds.files):
        want = torch.from_numpy(expected[name].transpose(2, 0, 1).copy())
        assert torch.equal(ds.images[i], want), f"{name}: {ds.images[i]} != {want}"
    # Each kind of note once for the dataset, naming an example; never one per image.
    said = note_warnings(caplog)
    assert len(said) == len(notes), said
    if NOTE_EXTRA_BANDS in notes:
        assert any("2 image(s) have more than three bands" in w for w in said), said
    if NOTE_FLOAT_CLIPPED in notes:
        assert any("2 image(s) hold floating-point values outside [0, 1]" in w for w in said)


def test_sixteen_bit_no_longer_clips_to_white(tmp_path):
    # The reported bug: a 16-bit export came out 99 % white. Mid-range 16-bit values must
    # come out mid-grey.
    root = tmp_path / "data"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        Image.fromarray(np.full((8, 8), 30000, dtype=np.uint16)).save(root / cls / "x.tif")
    ds = load_dataset("folder", root, 8, cache_dir=tmp_path / "cache", workers=1,
                      progress=False)
    assert int(ds.images.max()) == 30000 >> 8 == 117
    assert int(ds.images.min()) == 117


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "int8", "int16", "int32",
                                   ">u2", ">i2"])
def test_scale_to_uint8_maps_the_type_range_in_order(dtype):
    info = np.iinfo(np.dtype(dtype))
    values = np.array([info.min, info.min + 1, -1 if info.min < 0 else info.max // 2,
                       0 if info.min < 0 else info.max - 1, info.max], dtype=dtype)
    out, clipped = scale_to_uint8(values)
    assert not clipped
    bits = np.dtype(dtype).itemsize * 8
    want = ((values.astype(np.int64) - int(info.min)) >> (bits - 8)).astype(np.uint8)
    assert out.tolist() == want.tolist()
    assert out[0] == 0 and out[-1] == 255


def test_scale_to_uint8_floats():
    out, clipped = scale_to_uint8(np.array([0, 0.5, 1, np.nan, np.inf, -0.1, 1.1],
                                           dtype=np.float64))
    assert out.tolist() == [0, 128, 255, 0, 255, 0, 255]
    assert clipped
    out, clipped = scale_to_uint8(np.array([0.0, 1.0], dtype=np.float16))
    assert out.tolist() == [0, 255] and not clipped
