"""The dataset registry: names to loaders, loaded lazily.

A loader is a callable ``loader(*, seed, **options)`` that returns a ``Dataset`` (see
``make_dataset``) or a ``(train, eval)`` / ``(train, eval, meta)`` tuple, and raises
``DatasetUnavailableError`` with instructions when its data is not present.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._base import _LAYOUT, _NDIM, KINDS, Dataset, UnknownDatasetError, make_dataset

LATENT_SUFFIXES = (".npy", ".pt", ".pth")


@dataclass
class DatasetSpec:
    """One registry entry: where the loader lives and what it gives."""

    name: str
    target: str | Callable[..., Any]
    kind: str
    source: str = "vqbench"
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def load(self) -> Callable[..., Any]:
        """Import and return the loader."""
        if callable(self.target):
            return self.target
        module_name, sep, attr = self.target.partition(":")
        if not sep:
            raise ValueError(f"dataset {self.name!r}: target must be 'module:attr', got {self.target!r}")
        loader = getattr(importlib.import_module(module_name), attr)
        self.target = loader
        return loader

    def accepts_any_option(self) -> bool:
        """Whether the loader takes ``**options`` (then any option name is passed through)."""
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.load()).parameters.values())

    def options(self) -> dict[str, Any]:
        """The loader's options and their defaults (``seed`` excluded)."""
        params = inspect.signature(self.load()).parameters.values()
        return {
            p.name: (None if p.default is inspect.Parameter.empty else p.default)
            for p in params
            if p.name != "seed" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }


_SPECS: dict[str, DatasetSpec] = {}


def register_dataset(
    name: str,
    target: str | Callable[..., Any] | None = None,
    *,
    kind: str,
    source: str = "vqbench",
    description: str = "",
    tags: tuple[str, ...] = (),
):
    """Register a dataset loader under ``name``, as a decorator or a call.

    ``@register_dataset("my-latents", kind="vectors")`` on ``def load(*, seed=0, path=None): ...``, or
    ``register_dataset("my-latents", "mypkg.data:load", kind="vectors")``. A duplicate name raises
    ``ValueError``.
    """
    if not isinstance(name, str) or not name or any(c in name for c in " :*?[],"):
        raise ValueError(
            f"dataset name must be a non-empty string without spaces, ':', ',' or globs, got {name!r}"
        )
    if kind not in KINDS:
        raise ValueError(f"dataset {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")

    def add(obj: str | Callable[..., Any]):
        if not (isinstance(obj, str) or callable(obj)):
            raise TypeError(f"register_dataset({name!r}) needs a loader function or a 'module:attr' string")
        old = _SPECS.get(name)
        if old is not None and not (old.target is obj or old.target == obj):
            raise ValueError(
                f"a dataset named {name!r} is already registered (from {old.source}); choose another name"
            )
        if old is None:
            doc = description or (_first_line(obj.__doc__) if callable(obj) else "")
            _SPECS[name] = DatasetSpec(name, obj, kind, source, doc, tuple(tags))
        return obj

    return add if target is None else add(target)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n")[0]


def list_datasets(pattern: str | list[str] | None = None) -> list[str]:
    """Sorted registered names, filtered by glob pattern(s): ``"gaussian*"`` or ``"digits,uniform"``."""
    names = sorted(_SPECS)
    if pattern is None:
        return names
    patterns = pattern.split(",") if isinstance(pattern, str) else list(pattern)
    patterns = [p.strip() for p in patterns if p.strip()]
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def is_latents_path(name: str) -> bool:
    """Whether ``name`` names a latents file directly (``.npy`` / ``.pt``)."""
    return isinstance(name, str) and name.lower().endswith(LATENT_SUFFIXES) and name not in _SPECS


def get_dataset_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name``; an unknown name raises with the close matches."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"dataset name must be a non-empty string, got {name!r}")
    if name in _SPECS:
        return _SPECS[name]
    if is_latents_path(name):
        return _SPECS["latents"]
    close = difflib.get_close_matches(name, list(_SPECS), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "."
    raise UnknownDatasetError(
        f"unknown dataset {name!r}{hint} Registered: {', '.join(sorted(_SPECS))}. "
        f"A latents file can be named directly by its path ({' / '.join(LATENT_SUFFIXES)})."
    )


def load_dataset(name: str, *, seed: int = 0, **options: Any) -> Dataset:
    """Load the dataset registered as ``name`` with its fixed, seeded train/eval split.

    ``options`` go to the loader (``dim=32``, ``path=...``); unknown options raise ``TypeError``
    listing the accepted ones. A name ending in ``.npy`` / ``.pt`` loads that file as user latents.
    Raises ``DatasetUnavailableError`` (with how to get it) when the data is not present here.
    """
    spec = get_dataset_spec(name)
    if spec.name != name:  # a path used as the name
        if options.get("path") is not None:
            raise TypeError(f"dataset {name!r} is a path already; do not pass path={options['path']!r} too")
        options = {**options, "path": name}
    loader = spec.load()
    resolved = _bind(spec, loader, seed, options)
    result = loader(seed=seed, **options)
    dataset = _to_dataset(spec, result)
    meta = {"source": spec.source, **dataset.meta, "options": resolved, "seed": seed}
    return dataclasses.replace(dataset, name=spec.name, meta=meta)


def _bind(
    spec: DatasetSpec, loader: Callable[..., Any], seed: int, options: dict[str, Any]
) -> dict[str, Any]:
    sig = inspect.signature(loader)
    params = sig.parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        accepted = [n for n in params if n != "seed"]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise TypeError(
                f"dataset {spec.name!r} got unknown option(s) {', '.join(unknown)}; "
                f"accepted: {', '.join(accepted) or 'none'}"
            )
    try:
        bound = sig.bind(seed=seed, **options)
    except TypeError as exc:
        raise TypeError(f"dataset {spec.name!r}: {exc}") from exc
    bound.apply_defaults()
    return {k: _plain(v) for k, v in bound.arguments.items() if k != "seed"}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _to_dataset(spec: DatasetSpec, result: Any) -> Dataset:
    if isinstance(result, Dataset):
        _check_structure(spec.name, result)
        return result
    if isinstance(result, tuple) and len(result) in (2, 3):
        meta = result[2] if len(result) == 3 else {}
        return make_dataset(spec.name, spec.kind, result[0], result[1], meta)
    raise TypeError(
        f"dataset {spec.name!r}: the loader must return a Dataset or a (train, eval[, meta]) tuple, "
        f"got {type(result).__name__}"
    )


def _check_structure(name: str, ds: Dataset) -> None:
    import torch

    if ds.kind not in KINDS:
        raise ValueError(f"dataset {name!r}: kind must be one of {', '.join(KINDS)}, got {ds.kind!r}")
    for part in ("train", "eval"):
        t = getattr(ds, part)
        if not isinstance(t, torch.Tensor) or t.dtype != torch.float32 or t.ndim != _NDIM[ds.kind]:
            got = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(
                f"dataset {name!r}: {part} must be a float32 tensor {_LAYOUT[ds.kind]}, got {got}"
            )
    if ds.train.shape[1:] != ds.eval.shape[1:]:
        raise ValueError(f"dataset {name!r}: train and eval samples differ in shape")
    if not isinstance(ds.checksum, str) or not ds.checksum:
        raise ValueError(f"dataset {name!r}: missing checksum; build it with make_dataset()")
