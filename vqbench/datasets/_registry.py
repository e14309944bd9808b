"""The dataset registry: names to loaders, loaded lazily.

A loader is a callable ``loader(*, seed, **options)`` that returns a ``Dataset`` (see
``make_dataset``) or a ``(train, eval)`` / ``(train, eval, meta)`` tuple, and raises
``DatasetUnavailableError`` with instructions when its data is not present.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vqbench._registry import Registry, check_name, entry_point_source, first_line, load_reference
from vqbench.errors import UnknownNameError, UserError

from ._base import _LAYOUT, _NDIM, KINDS, Dataset, UnknownDatasetError, make_dataset

LATENT_SUFFIXES = (".npy", ".pt", ".pth")
ENTRY_POINT_GROUP = "vqbench.datasets"


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
        loader = load_reference(self.target, what=f"dataset {self.name!r}")
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


def _from_entry_point(ep: Any) -> DatasetSpec:
    """An entry point names a DatasetSpec, or a loader function with a ``kind`` attribute."""
    obj = load_reference(ep.value, what=f"dataset {ep.name!r}", callable_only=False)
    if isinstance(obj, DatasetSpec):
        if obj.name != ep.name:
            raise UserError(
                f"entry point {ep.name!r} names a dataset called {obj.name!r}; the names must agree"
            )
        return obj
    kind = getattr(obj, "kind", None)
    if not callable(obj) or kind is None:
        raise UserError(
            f"entry point {ep.name!r} ({ep.value}) must name a DatasetSpec or a loader function with a "
            f"'kind' attribute (one of {', '.join(KINDS)}), got {type(obj).__name__}"
        )
    return DatasetSpec(ep.name, obj, kind, entry_point_source(ep), first_line(obj.__doc__))


def _check(spec: DatasetSpec) -> None:
    if spec.kind not in KINDS:
        raise UserError(f"dataset {spec.name!r}: kind must be one of {', '.join(KINDS)}, got {spec.kind!r}")
    if not (isinstance(spec.target, str) or callable(spec.target)):
        raise UserError(f"dataset {spec.name!r} needs a loader function or a 'module:attr' string")


def _path(name: str) -> DatasetSpec | None:
    return DATASETS.specs()["latents"] if is_latents_path(name) else None


DATASETS: Registry[DatasetSpec] = Registry(
    "dataset",
    ENTRY_POINT_GROUP,
    from_entry_point=_from_entry_point,
    check=_check,
    fallback=_path,
    hint=f" A latents file can be named directly by its path ({' / '.join(LATENT_SUFFIXES)}).",
)


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
    ``UserError``.
    """
    check_name(name, "dataset")
    if kind not in KINDS:
        raise UserError(f"dataset {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")

    def add(obj: str | Callable[..., Any]):
        doc = description or (first_line(obj.__doc__) if callable(obj) else "")
        spec = DatasetSpec(name, obj, kind, source, doc, tuple(tags))
        DATASETS.add(spec, same=lambda old, new: old.target is new.target or old.target == new.target)
        return obj

    return add if target is None else add(target)


def list_datasets(pattern: str | list[str] | None = None) -> list[str]:
    """Sorted registered names, filtered by glob pattern(s): ``"gaussian*"`` or ``"digits,uniform"``."""
    return DATASETS.names(pattern)


def is_latents_path(name: str) -> bool:
    """Whether ``name`` names a latents file directly (``.npy`` / ``.pt``)."""
    return isinstance(name, str) and name.lower().endswith(LATENT_SUFFIXES) and name not in DATASETS.specs()


def get_dataset_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name``; an unknown name raises with the close matches."""
    try:
        return DATASETS.get(name)
    except UnknownNameError as exc:
        raise UnknownDatasetError(str(exc)) from None


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
