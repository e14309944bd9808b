"""Patches of the natural images bundled with scikit-image: ``skimage-gray`` and ``skimage-rgb``.

Patches are cut on a grid (``stride`` defaults to ``patch_size``: no pixel is shared between patches,
so none between train and eval), a seeded subset of ``count`` is drawn over all images, and split.
"""

from __future__ import annotations

import functools

import torch
from einops import rearrange

from ._base import Dataset, DatasetUnavailableError, check_count, make_dataset, permutation, split_counts

GRAY_IMAGES = ("camera", "coins", "moon", "grass", "gravel", "brick")
RGB_IMAGES = ("astronaut", "coffee", "chelsea", "rocket")
_LUMA = (0.2125, 0.7154, 0.0721)  # ITU-R BT.709, as skimage.color.rgb2gray


@functools.lru_cache(maxsize=64)
def _image(name: str, color: bool) -> torch.Tensor:
    """One bundled image as (C, H, W) float32 in [0, 1]; cached, never handed out without a copy."""
    try:
        import skimage.data
    except ImportError as exc:
        raise DatasetUnavailableError(
            "the skimage-* datasets need scikit-image: pip install scikit-image (or vqbench[data])"
        ) from exc
    load = getattr(skimage.data, name, None)
    if load is None or not callable(load):
        raise ValueError(
            f"no image named {name!r} in skimage.data; try {', '.join(GRAY_IMAGES + RGB_IMAGES)}"
        )
    try:
        array = load()
    except Exception as exc:  # an image that skimage would have to download
        raise DatasetUnavailableError(
            f"skimage.data.{name}() could not be read here ({type(exc).__name__}: {exc}); "
            "choose images bundled with scikit-image"
        ) from exc
    image = torch.from_numpy(array)
    scale = 255.0 if image.dtype == torch.uint8 else 1.0
    image = image.to(torch.float32) / scale
    if image.ndim == 3 and image.shape[-1] == 4:  # RGBA: drop alpha
        image = image[..., :3]
    if color:
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"skimage-rgb: image {name!r} is not an RGB image (shape {tuple(array.shape)})")
        image = rearrange(image, "h w c -> c h w")
    else:
        if image.ndim == 3:
            image = (image * torch.tensor(_LUMA)).sum(-1)
        image = image.unsqueeze(0)
    return image.clamp_(0.0, 1.0).contiguous()


def _patches(
    name: str,
    color: bool,
    images,
    seed: int,
    patch_size: int,
    stride: int | None,
    count: int | None,
    eval_fraction: float,
) -> Dataset:
    check_count(patch_size, "patch_size")
    stride = patch_size if stride is None else stride
    check_count(stride, "stride")
    check_count(count, "count", allow_none=True, minimum=2)
    if isinstance(images, str):
        images = tuple(n.strip() for n in images.split(",") if n.strip())
    if not images or not all(isinstance(n, str) for n in images):
        raise ValueError(
            f"images must be skimage.data names (a list or comma-separated string), got {images!r}"
        )
    grids = []  # (unfold view (C, nh, nw, p, p), number of patches)
    for image_name in images:
        image = _image(image_name, color)
        if min(image.shape[1:]) < patch_size:
            raise ValueError(
                f"{name}: patch_size {patch_size} exceeds image {image_name!r}, {tuple(image.shape[1:])}"
            )
        view = image.unfold(1, patch_size, stride).unfold(2, patch_size, stride)
        grids.append((view, view.shape[1] * view.shape[2]))
    available = sum(n for _, n in grids)
    if count is not None and count > available:
        raise ValueError(
            f"{name}: count={count} patches asked, {available} available at patch_size={patch_size}, "
            f"stride={stride}; lower count or stride"
        )
    chosen = permutation(available, seed, f"{name}:patches")[: available if count is None else count]
    n_train, _ = split_counts(len(chosen), eval_fraction, name)
    offsets = torch.tensor([0] + [n for _, n in grids]).cumsum(0)
    picked = torch.empty(len(chosen), grids[0][0].shape[0], patch_size, patch_size)
    for k, (view, _) in enumerate(grids):
        mask = (chosen >= offsets[k]) & (chosen < offsets[k + 1])
        local = chosen[mask] - offsets[k]
        rows, cols = local // view.shape[2], local % view.shape[2]
        picked[mask] = rearrange(view[:, rows, cols], "c n ph pw -> n c ph pw")
    meta = {
        "origin": "skimage.data",
        "images": list(images),
        "patch_size": patch_size,
        "stride": stride,
        "patches_available": available,
        "overlapping": stride < patch_size,
    }
    return make_dataset(name, "images", picked[:n_train], picked[n_train:], meta)


def skimage_gray(
    *,
    seed: int = 0,
    patch_size: int = 16,
    stride: int | None = None,
    count: int | None = 3200,
    eval_fraction: float = 0.2,
    images: str | tuple[str, ...] = GRAY_IMAGES,
) -> Dataset:
    """Grayscale patches (N, 1, p, p) of scikit-image's natural images (camera, coins, moon, textures)."""
    return _patches("skimage-gray", False, images, seed, patch_size, stride, count, eval_fraction)


def skimage_rgb(
    *,
    seed: int = 0,
    patch_size: int = 16,
    stride: int | None = None,
    count: int | None = 3200,
    eval_fraction: float = 0.2,
    images: str | tuple[str, ...] = RGB_IMAGES,
) -> Dataset:
    """Colour patches (N, 3, p, p) of scikit-image's photographs (astronaut, coffee, chelsea, rocket)."""
    return _patches("skimage-rgb", True, images, seed, patch_size, stride, count, eval_fraction)
