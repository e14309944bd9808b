"""The dataset record, its checks and checksum, and helpers shared by the sources.

Nothing here imports torch at module level, so that ``import vqbench.datasets`` stays cheap.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vqbench.errors import UserError

if TYPE_CHECKING:
    import torch

KINDS = ("vectors", "images", "audio")
_NDIM = {"vectors": 2, "images": 4, "audio": 2}
_LAYOUT = {"vectors": "(N, D)", "images": "(N, C, H, W)", "audio": "(N, frame_len)"}


class DatasetUnavailableError(RuntimeError, UserError):
    """The data is not present here; the message says how to get it."""


class UnknownDatasetError(KeyError, UserError):
    """A name that is neither registered nor a ``.npy`` / ``.pt`` path."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True, eq=False)
class Dataset:
    """A named dataset with a fixed train/eval split and a checksum of the exact data.

    ``train`` and ``eval`` are float32 CPU tensors: ``(N, D)`` for vectors and audio frames,
    ``(N, C, H, W)`` with values in [0, 1] for images.
    """

    name: str
    kind: str
    train: torch.Tensor
    eval: torch.Tensor
    checksum: str
    meta: dict = field(default_factory=dict)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample: ``(D,)``, ``(frame_len,)`` or ``(C, H, W)``."""
        return tuple(self.train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, kind={self.kind!r}, train={tuple(self.train.shape)}, "
            f"eval={tuple(self.eval.shape)}, checksum={self.checksum[:12]!r})"
        )


def checksum(train: torch.Tensor, eval: torch.Tensor) -> str:
    """SHA-256 hex digest of the shapes and the little-endian float32 bytes of train, then eval."""
    import numpy as np

    h = hashlib.sha256()
    for part, tensor in (("train", train), ("eval", eval)):
        array = np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype="<f4")
        h.update(f"{part}:{'x'.join(map(str, array.shape))}:float32le;".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def make_dataset(name: str, kind: str, train: Any, eval: Any, meta: dict | None = None) -> Dataset:
    """Check the layout of ``train`` / ``eval`` and build the ``Dataset`` with its checksum.

    Accepts torch tensors or numpy arrays; converts floating data to contiguous float32 on the CPU.
    """
    import torch

    if kind not in KINDS:
        raise ValueError(f"dataset {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    parts = {}
    for part, data in (("train", train), ("eval", eval)):
        tensor = _as_float32(name, part, data)
        if tensor.ndim != _NDIM[kind]:
            raise ValueError(
                f"dataset {name!r}: {kind} {part} must be {_NDIM[kind]}-D {_LAYOUT[kind]}, "
                f"got shape {tuple(tensor.shape)}"
            )
        if tensor.shape[0] < 1 or tensor[0].numel() < 1:
            raise ValueError(f"dataset {name!r}: {part} is empty (shape {tuple(tensor.shape)})")
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise ValueError(
                f"dataset {name!r}: {part} has {bad} NaN or infinite values; expected finite data"
            )
        if kind == "images":
            lo, hi = float(tensor.min()), float(tensor.max())
            if lo < 0.0 or hi > 1.0:
                raise ValueError(
                    f"dataset {name!r}: images must have values in [0, 1], {part} spans [{lo:.4g}, {hi:.4g}]"
                )
        parts[part] = tensor
    if parts["train"].shape[1:] != parts["eval"].shape[1:]:
        raise ValueError(
            f"dataset {name!r}: train and eval samples must have the same shape, got "
            f"{tuple(parts['train'].shape[1:])} and {tuple(parts['eval'].shape[1:])}"
        )
    return Dataset(
        name, kind, parts["train"], parts["eval"], checksum(parts["train"], parts["eval"]), dict(meta or {})
    )


def _as_float32(name: str, part: str, data: Any) -> torch.Tensor:
    import numpy as np
    import torch

    if isinstance(data, np.ndarray):
        if not (np.issubdtype(data.dtype, np.floating)):
            raise TypeError(f"dataset {name!r}: {part} must hold floating-point data, got dtype {data.dtype}")
        data = torch.from_numpy(np.ascontiguousarray(data))
    if not isinstance(data, torch.Tensor):
        raise TypeError(
            f"dataset {name!r}: {part} must be a torch.Tensor or numpy array, got {type(data).__name__}"
        )
    if not data.is_floating_point():
        raise TypeError(f"dataset {name!r}: {part} must hold floating-point data, got dtype {data.dtype}")
    return data.detach().to(device="cpu", dtype=torch.float32).contiguous()


# ---- helpers for the sources -------------------------------------------------------------------


def generator(seed: int, stream: str):
    """A CPU ``torch.Generator`` for one named stream of ``seed`` (independent streams per name)."""
    import torch

    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    digest = hashlib.sha256(f"vqbench:{seed}:{stream}".encode()).digest()
    g = torch.Generator(device="cpu")
    g.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return g


def permutation(n: int, seed: int, stream: str) -> torch.Tensor:
    """A seeded permutation of ``range(n)``, identical on every machine."""
    import torch

    return torch.randperm(n, generator=generator(seed, stream))


def split_counts(n: int, eval_fraction: float, what: str) -> tuple[int, int]:
    """Train and eval sizes for ``n`` samples; both at least 1."""
    check_fraction(eval_fraction)
    if n < 2:
        raise ValueError(f"{what}: need at least 2 samples to split into train and eval, got {n}")
    n_eval = min(max(1, round(n * eval_fraction)), n - 1)
    return n - n_eval, n_eval


def check_fraction(eval_fraction: float) -> None:
    if (
        not isinstance(eval_fraction, (int, float))
        or isinstance(eval_fraction, bool)
        or not 0 < eval_fraction < 1
    ):
        raise ValueError(f"eval_fraction must be a number strictly between 0 and 1, got {eval_fraction!r}")


def check_count(value: Any, option: str, *, allow_none: bool = False, minimum: int = 1) -> None:
    """A positive int option (or None where allowed); the message names the option."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        expected = f"an int >= {minimum}" + (" or None" if allow_none else "")
        raise ValueError(f"{option} must be {expected}, got {value!r}")


def subset(n: int, count: int | None, seed: int, stream: str, what: str):
    """Indices of a seeded subset of ``count`` out of ``n`` (all of them, in order, when None)."""
    import torch

    if count is None:
        return torch.arange(n)
    if count > n:
        raise ValueError(f"{what}: asked for {count} samples, only {n} are available")
    return permutation(n, seed, stream)[:count].sort().values


def resolve_folder(path: str | os.PathLike | None, env: str, default: str) -> tuple[Path, str]:
    """The folder to read from and where that choice came from (option, environment or default)."""
    if path is not None:
        return Path(path).expanduser(), "path option"
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser(), f"${env}"
    return Path(default), "default"


def file_key(path: Path) -> tuple[str, int, int]:
    """A cache key that changes when the file does."""
    stat = path.stat()
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
