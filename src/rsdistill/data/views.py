"""Views of a scene dataset: the same images as another model sees them.

A view is named by ``(size, source)``: the images at ``size`` px, decoded straight to that
size (``source`` None), or first reduced to ``source`` px and then resized (bicubic) to
``size`` px. The second kind is what a high-resolution teacher reads when it is taught on
the student's own low-resolution view (resolution-consistent teaching): the scene holds
only the detail the student can see.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from rsdistill.data.dataset import SceneDataset
from rsdistill.errors import ConfigError

ViewKey = tuple[int, "int | None"]
# Images resized per chunk, so a large dataset never needs its float copy at once.
_CHUNK = 512


def view_key(size: int, source: int | None = None) -> ViewKey:
    """The canonical key: a source equal to the size is the native view."""
    size = int(size)
    source = None if source is None or int(source) == size else int(source)
    if source is not None and source > size:
        raise ConfigError(f"a view of {size} px cannot be made from {source} px images "
                          "(the source must be smaller: views are upsampled)")
    return size, source


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, C, s, s)`` uint8 images resized to ``size`` px with bicubic interpolation,
    rounded and clipped back to uint8 (as an image file would hold them)."""
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], _CHUNK):
        x = images[start:start + _CHUNK].float()
        y = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
        out[start:start + _CHUNK] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def upsampled_view(source: SceneDataset, size: int) -> SceneDataset:
    """``source``'s images resized to ``size`` px: the scene as seen at the source's
    resolution, fed to a model that reads ``size`` px."""
    return replace(source, images=resize_uint8(source.images, size), image_size=int(size),
                   cache_path=None)
