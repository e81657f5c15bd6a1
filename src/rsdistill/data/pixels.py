"""Any image file -> an 8-bit RGB array, whatever its bit depth, sample type or band count.

Rules (README, "Data"):

* 8-bit images (and palette, grey, CMYK, alpha, ...) convert to RGB as Pillow does.
* Integer samples wider than 8 bits keep their top 8 bits of the type's full range:
  16-bit ``v -> v >> 8`` (floor(v / 256)); signed types are offset to start at 0 first.
  This is Pillow's own reduction of 16-bit RGB TIFFs and PNGs and torchvision's
  ``to_dtype(uint8, scale=True)``, and it inverts the usual 8 -> 16-bit widening
  (``0xAB -> 0xABAB``) exactly. The scale is fixed, never stretched per image: a
  per-image stretch (what torchgeo's plots do for display) would give one scene a
  different brightness depending on its content and erase the brightness differences
  between classes; models are fed dataset-wide statistics instead (``--standardize``).
* Floating-point samples are taken to be in [0, 1] (0 black, 1 white, torchvision's and
  scikit-image's convention): ``round(clip(v, 0, 1) * 255)``, NaN -> 0 (black). Values outside
  are clipped and the dataset's load says how many images had any.
* More than three bands (RGB + NIR, ...): the first three are used as red, green, blue,
  noted once per dataset. Bands declared alpha are dropped silently, as for RGBA.

Pillow reads most files; TIFF layouts it cannot open (several 16-bit or float bands,
GDAL's default "grey + extra bands" layout) or decodes wrongly (16-bit bands in separate
planes) are read with tifffile.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Notes a decode can raise about an image; the loader reports each once per dataset.
NOTE_EXTRA_BANDS = "extra_bands"
NOTE_FLOAT_CLIPPED = "float_clipped"

# The rules above as the deployment contract states them (export/contract.py writes
# them into every exported file, so a deployer can feed 16-bit and float files alike).
RULE_8BIT = "8-bit samples (and palette, grey, CMYK, alpha) as Image.convert('RGB') gives them"
RULE_INTEGER = ("integer samples wider than 8 bits keep the top 8 bits of their type's full "
                "range: v >> (bits - 8) (16-bit: v >> 8); signed types add 2^(bits-1) first")
RULE_FLOAT = "float samples taken as 0..1: round(clip(v, 0, 1) * 255), NaN -> 0"
RULE_BANDS = ("1 band (grey): repeated as R, G, B; more than 3 bands: bands 1-3 as R, G, B; "
              "alpha dropped")

_HIGH_DEPTH_MODES = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I;16N": "=u2"}
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# Samples of one pixel's colour per TIFF photometric interpretation (the rest are
# extra bands): 0/1 grey, 2 RGB, 3 palette, 5 CMYK, 6 YCbCr, 8 CIELab.
_BASE_SAMPLES = {0: 1, 1: 1, 2: 3, 3: 1, 5: 4, 6: 3, 8: 3}
_ALPHA = (1, 2)  # ExtraSamples: associated, unassociated alpha


class UnsupportedImage(ValueError):
    """A readable file this decoder has no rule for (complex samples, > 3 dimensions)."""


def is_tiff(data: bytes) -> bool:
    return data[:4] in _TIFF_MAGIC


def scale_to_uint8(arr: np.ndarray) -> tuple[np.ndarray, bool]:
    """Samples of any numeric dtype -> uint8 by the rules above; also whether floating
    values had to be clipped (or were NaN)."""
    kind = arr.dtype.kind
    if kind == "b":
        return arr.astype(np.uint8) * 255, False
    if kind == "u":
        return (arr >> (arr.dtype.itemsize * 8 - 8)).astype(np.uint8), False
    if kind == "i":
        # Flipping the sign bit maps [min, max] onto [0, 2^bits - 1] in order.
        unsigned = np.dtype(f"u{arr.dtype.itemsize}")
        flipped = arr.view(unsigned.newbyteorder(arr.dtype.byteorder)) ^ unsigned.type(
            1 << (arr.dtype.itemsize * 8 - 1))
        return scale_to_uint8(flipped)
    if kind == "f":
        values = arr.astype(np.float64)
        clipped = bool(np.isnan(values).any() or (values < 0).any() or (values > 1).any())
        values = np.clip(np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
        return np.rint(values * 255.0).astype(np.uint8), clipped
    raise UnsupportedImage(f"{arr.dtype} samples are not an image this tool can read")


def _bands_to_rgb(arr: np.ndarray, alpha_extras: int) -> tuple[np.ndarray, bool]:
    """H×W×C uint8 -> H×W×3; also whether bands other than alpha were left out."""
    bands = arr.shape[2]
    dropped = max(0, bands - 3) if bands >= 3 else bands - 1
    rgb = arr[..., :3] if bands >= 3 else np.repeat(arr[..., :1], 3, axis=2)
    return np.ascontiguousarray(rgb), dropped > alpha_extras


def _tiff_extras(img: Image.Image) -> tuple[int, int]:
    """(extra bands, of which alpha) declared by a TIFF Pillow opened."""
    tags = getattr(img, "tag_v2", None)
    if not tags or 277 not in tags:
        return 0, 0
    samples = int(tags[277])
    base = _BASE_SAMPLES.get(int(tags.get(262, 1)), samples)
    extra = tags.get(338, ())
    extra = (extra,) if isinstance(extra, int) else tuple(extra)
    return max(0, samples - base), sum(1 for e in extra if e in _ALPHA)


def _declared_int_dtype(img: Image.Image) -> np.dtype:
    """The sample type of a Pillow mode "I" image: from the TIFF tags when it is one,
    else unsigned 16-bit (the PNG/PNM samples older Pillows open as "I")."""
    tags = getattr(img, "tag_v2", None) or {}
    bits, fmt = tags.get(258, (16,)), tags.get(339, (1,))
    bits = bits[0] if isinstance(bits, tuple) else bits
    fmt = fmt[0] if isinstance(fmt, tuple) else fmt
    if bits in (8, 16, 32) and fmt in (1, 2):
        return np.dtype(f"{'u' if fmt == 1 else 'i'}{bits // 8}")
    return np.dtype("u2")


def pillow_reads_correctly(img: Image.Image) -> bool:
    """False for what Pillow opens but decodes wrongly: several samples wider than 8 bits
    stored as separate planes (PlanarConfiguration 2) come out garbled (Pillow 13)."""
    tags = getattr(img, "tag_v2", None)
    if not tags:
        return True
    bits = tags.get(258, (8,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    return not (tags.get(284, 1) == 2 and max(bits) > 8 and int(tags.get(277, 1)) > 1)


def pillow_rgb(img: Image.Image) -> tuple[Image.Image, set[str]]:
    """A loaded Pillow image -> an RGB Pillow image and the notes it raises."""
    notes: set[str] = set()
    extra, alpha = _tiff_extras(img)
    if extra > alpha:
        notes.add(NOTE_EXTRA_BANDS)
    if img.mode in _HIGH_DEPTH_MODES:
        grey, _ = scale_to_uint8(np.asarray(img).astype(_HIGH_DEPTH_MODES[img.mode]))
    elif img.mode == "I":
        grey, _ = scale_to_uint8(np.asarray(img).astype(_declared_int_dtype(img)))
    elif img.mode == "F":
        grey, clipped = scale_to_uint8(np.asarray(img))
        if clipped:
            notes.add(NOTE_FLOAT_CLIPPED)
    else:
        return img.convert("RGB"), notes
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=2)), notes


def tifffile_rgb(data: bytes) -> tuple[Image.Image, set[str]]:
    """A TIFF Pillow cannot open -> an RGB Pillow image and the notes it raises."""
    import tifffile

    notes: set[str] = set()
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        if page.imagewidth * page.imagelength > 2 * (Image.MAX_IMAGE_PIXELS or 1 << 62):
            raise Image.DecompressionBombError(
                f"{page.imagewidth}×{page.imagelength} pixels, over the decompression-bomb "
                "limit")
        if int(page.photometric) not in (1, 2):
            raise UnsupportedImage(f"TIFF photometric interpretation {int(page.photometric)} "
                                   "with this sample layout is not supported")
        arr = page.asarray()
        axes = page.axes
        alpha = sum(1 for e in (page.extrasamples or ()) if int(e) in _ALPHA)
    # Samples last, every other axis but Y and X must be of length one.
    if "S" in axes:
        arr = np.moveaxis(arr, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    else:
        arr, axes = arr[..., None], axes + "S"
    keep = [i for i, a in enumerate(axes) if a in "YXS"]
    if len(keep) != 3 or any(arr.shape[i] != 1 for i, a in enumerate(axes) if a not in "YXS"):
        raise UnsupportedImage(f"TIFF of shape {tuple(arr.shape)} ({page.axes}) is not a "
                               "single image")
    arr = arr.reshape([arr.shape[i] for i in keep])
    scaled, clipped = scale_to_uint8(arr)
    rgb, dropped = _bands_to_rgb(scaled, alpha)
    if dropped:
        notes.add(NOTE_EXTRA_BANDS)
    if clipped:
        notes.add(NOTE_FLOAT_CLIPPED)
    return Image.fromarray(rgb), notes
