"""User latents: an encoder's outputs dumped to a ``.npy`` or ``.pt`` file.

As vectors (the default), the feature axis (``channel_dim``, last by default) becomes D and every
leading axis is flattened: (B, T, D) -> (B*T, D). As images, the file must hold (N, C, H, W) or
(N, H, W) values in [0, 1]. Rows are split into train and eval by a seeded permutation.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqbench.errors import MissingFileError, UnknownNameError

from ._base import (
    Dataset,
    DatasetUnavailableError,
    check_count,
    file_key,
    make_dataset,
    permutation,
    split_counts,
)

ENV = "VQBENCH_LATENTS"
SUFFIXES = (".npy", ".pt", ".pth")
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def latents(
    *,
    seed: int = 0,
    path: str | None = None,
    kind: str = "vectors",
    channel_dim: int | None = None,
    key: str | None = None,
    eval_fraction: float = 0.2,
    max_train: int | None = None,
    max_eval: int | None = None,
) -> Dataset:
    """Latents from a ``.npy`` / ``.pt`` file, as (N, D) vectors or (N, C, H, W) images.

    ``channel_dim``: the feature axis (vectors: default -1) or channel axis (images: default 1, and
    for (N, H, W) files none); ``key``: the entry of a ``.pt`` file that holds a dict.
    """
    if kind not in ("vectors", "images"):
        raise ValueError(f"latents: kind must be 'vectors' or 'images', got {kind!r}")
    if channel_dim is not None and (not isinstance(channel_dim, int) or isinstance(channel_dim, bool)):
        raise ValueError(f"latents: channel_dim must be an int axis or None, got {channel_dim!r}")
    check_count(max_train, "max_train", allow_none=True)
    check_count(max_eval, "max_eval", allow_none=True)
    file = _resolve(path)
    data = _load(file_key(file), key)  # cached; never written to
    _check_values(file, data)
    samples = (
        _as_vectors(file, data, channel_dim) if kind == "vectors" else _as_images(file, data, channel_dim)
    )
    n_train, _ = split_counts(len(samples), eval_fraction, f"latents {file}")
    order = permutation(len(samples), seed, "latents:split")
    train_ids, eval_ids = order[:n_train], order[n_train:]
    if max_train is not None:
        train_ids = train_ids[:max_train]
    if max_eval is not None:
        eval_ids = eval_ids[:max_eval]
    train = samples[train_ids].to(torch.float32)  # advanced indexing copies
    eval = samples[eval_ids].to(torch.float32)
    meta = {
        "origin": "user file",
        "path": str(file),
        "file_shape": list(data.shape),
        "file_dtype": str(data.dtype),
    }
    if key is not None:
        meta["key"] = key
    return make_dataset("latents", kind, train, eval, meta)


def _resolve(path: str | os.PathLike | None) -> Path:
    if path is None:
        path = os.environ.get(ENV) or None
    if path is None:
        raise DatasetUnavailableError(
            "latents: no file given. Dump your encoder's latents with numpy.save('z.npy', z) or "
            "torch.save(z, 'z.pt'), then pass path='z.npy' (or use the path as the dataset name), "
            f"or set {ENV}=z.npy"
        )
    file = Path(path).expanduser()
    if file.suffix.lower() not in SUFFIXES:
        raise ValueError(f"latents: expected a {' / '.join(SUFFIXES)} file, got {str(file)!r}")
    if not file.is_file():  # a file the user named: an error, never a skip
        raise MissingFileError(
            f"latents: no such file: {file}. Expected a {' / '.join(SUFFIXES)} file of latents "
            "(numpy.save or torch.save)"
        )
    return file.resolve()


@functools.lru_cache(maxsize=2)
def _load(key_: tuple[str, int, int], key: str | None) -> torch.Tensor:
    file = Path(key_[0])
    if file.suffix.lower() == ".npy":
        if key is not None:
            raise ValueError(f"latents: key={key!r} applies to .pt files holding a dict, not to {file.name}")
        try:
            array = np.load(file, allow_pickle=False)
        except ValueError as exc:
            raise TypeError(f"latents {file}: expected a numeric array, could not load it: {exc}") from exc
        if not isinstance(array, np.ndarray):
            raise TypeError(f"latents {file}: expected one array, got {type(array).__name__}")
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(
                f"latents {file}: expected floating-point latents (float16/32/64), got dtype {array.dtype}"
            )
        return torch.from_numpy(np.ascontiguousarray(array))
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle of anything but tensors, or a corrupt file
        raise ValueError(
            f"latents {file}: could not load it as tensors ({type(exc).__name__}: {exc})"
        ) from exc
    tensor = _pick(file, obj, key)
    if tensor.dtype not in _FLOATS:
        raise TypeError(
            f"latents {file}: expected floating-point latents (float16/bfloat16/32/64), got {tensor.dtype}"
        )
    return tensor.detach()


def _pick(file: Path, obj: Any, key: str | None) -> torch.Tensor:
    if isinstance(obj, torch.Tensor):
        if key is not None:
            raise ValueError(f"latents {file}: key={key!r} given, but the file holds one tensor")
        return obj
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if key is not None:
            if key not in obj:
                raise UnknownNameError(
                    f"latents {file}: no key {key!r}; the file has keys {sorted(map(str, obj))}"
                )
            if not isinstance(obj[key], torch.Tensor):
                raise TypeError(
                    f"latents {file}: {key!r} holds a {type(obj[key]).__name__}, expected a tensor"
                )
            return obj[key]
        if len(tensors) == 1:
            return next(iter(tensors.values()))
        raise ValueError(
            f"latents {file}: the file holds a dict with tensors {sorted(map(str, tensors))}; "
            "pass key=NAME to choose one"
        )
    raise TypeError(f"latents {file}: expected a tensor (or a dict of tensors), got {type(obj).__name__}")


def _check_values(file: Path, data: torch.Tensor) -> None:
    if data.ndim == 0 or data.numel() == 0:
        raise ValueError(f"latents {file}: expected a non-empty array, got shape {tuple(data.shape)}")
    bad = ~torch.isfinite(data)
    if bad.any():
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"latents {file}: {int(bad.sum())} NaN or infinite values (first at index {first}); "
            "expected finite latents"
        )


def _as_vectors(file: Path, data: torch.Tensor, channel_dim: int | None) -> torch.Tensor:
    if data.ndim < 2:
        raise ValueError(
            f"latents {file}: expected 2 or more dimensions, (N, D) or (..., D), got {tuple(data.shape)}"
        )
    axis = -1 if channel_dim is None else channel_dim
    if not -data.ndim <= axis < data.ndim:
        raise ValueError(f"latents {file}: channel_dim={axis} is out of range for shape {tuple(data.shape)}")
    return data.movedim(axis, -1).reshape(-1, data.shape[axis])


def _as_images(file: Path, data: torch.Tensor, channel_dim: int | None) -> torch.Tensor:
    if data.ndim == 3 and channel_dim is None:
        data = data.unsqueeze(1)
    elif data.ndim == 4:
        axis = 1 if channel_dim is None else channel_dim
        if not -4 <= axis < 4 or axis % 4 == 0:
            raise ValueError(f"latents {file}: channel_dim={axis} must be one of 1, 2, 3 for images (N, ...)")
        data = data.movedim(axis, 1)
    else:
        raise ValueError(
            f"latents {file}: images must be (N, C, H, W) or (N, H, W), got shape {tuple(data.shape)}"
        )
    lo, hi = float(data.min()), float(data.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"latents {file}: images must have values in [0, 1], got [{lo:.4g}, {hi:.4g}]; "
            "rescale them, or load them as kind='vectors'"
        )
    return data
