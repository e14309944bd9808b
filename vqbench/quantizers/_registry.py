"""The quantizer registry: names to factories, loaded lazily.

Three ways in:
- built-ins and the ``@register_quantizer`` decorator (``target`` may be a ``"module:attr"`` string,
  so that nothing is imported until the quantizer is built);
- the entry-point group ``vqbench.quantizers`` of installed packages;
- a reference used directly as the name: ``path/to/file.py:Name`` or ``package.module:Name``.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from vqbench.errors import MissingFileError, UserError

from ._protocol import is_quantizer

ENTRY_POINT_GROUP = "vqbench.quantizers"


class UnknownQuantizerError(KeyError, UserError):
    """Raised for a name that is neither registered nor a loadable reference."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class PluginLoadError(ImportError, UserError):
    """Raised when a quantizer's module or entry point cannot be imported."""


@dataclass
class QuantizerSpec:
    """One registry entry: where the factory lives and what it is."""

    name: str
    target: str | Callable[..., Any]
    family: str = "other"
    source: str = "vqbench"
    description: str = ""
    default: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)

    def load(self) -> Callable[..., Any]:
        """Import and return the factory (class or function)."""
        if callable(self.target):
            return self.target
        factory = load_reference(self.target, what=f"quantizer {self.name!r}")
        self.target = factory
        return factory


def load_reference(ref: str, what: str = "reference") -> Callable[..., Any]:
    """Load ``module:attr`` or ``path/to/file.py:attr``; errors name the reference."""
    module_name, sep, attr = ref.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{what}: expected 'module:attr' or 'path/to/file.py:attr', got {ref!r}")
    try:
        if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
            module = _import_file(Path(module_name))
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:  # a plugin may fail in any way; report it by name
        detail = f"{type(exc).__name__}: {exc}"
        raise PluginLoadError(f"{what}: could not import {module_name!r}: {detail}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, public, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            own = getattr(obj, "__name__", None)
            classes = [
                n for n in public if isinstance(v := getattr(obj, n, None), type) and v.__module__ == own
            ]
            listing = f"; it defines {', '.join(classes[:12])}" if classes and not close else ""
            raise PluginLoadError(f"{what}: module {module_name!r} has no attribute {part!r}{hint}{listing}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise PluginLoadError(f"{what}: {ref!r} is a {type(obj).__name__}, not a class or factory")
    return obj


def _import_file(path: Path):
    """Import a Python file as a module; its folder joins ``sys.path`` (after the entries there),
    so that the file can import a module beside it, in this process and in the suite's workers."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise MissingFileError(f"no such file: {path}")
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
        importlib.invalidate_caches()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"vqbench_plugin_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load a Python module from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _same_source(a: Any, b: Any) -> bool:
    """Two callables defined by the same code (one file imported as a plugin module and as a
    ``file.py:Name`` reference gives two module objects)."""
    if not (callable(a) and callable(b)) or getattr(a, "__qualname__", 1) != getattr(b, "__qualname__", 2):
        return False
    import inspect

    try:
        return inspect.getsourcefile(a) == inspect.getsourcefile(b) is not None
    except TypeError:
        return False


class _Registry:
    def __init__(self) -> None:
        self._specs: dict[str, QuantizerSpec] = {}
        self._plugin_errors: dict[str, str] = {}
        self._entry_points_loaded = False
        self._entry_point_names: set[str] = set()

    def add(self, spec: QuantizerSpec) -> None:
        old = self._specs.get(spec.name)
        if old is not None:
            if (
                old.target is spec.target
                or old.target == spec.target
                or _same_source(old.target, spec.target)
            ):
                return  # the same object registered again (a module imported twice)
            raise ValueError(
                f"a quantizer named {spec.name!r} is already registered (from {old.source}); "
                "choose another name"
            )
        self._specs[spec.name] = spec

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            source = dist.name if dist is not None else "entry point"
            try:
                self.add(QuantizerSpec(ep.name, ep.value, family="plugin", source=source, default=False))
                self._entry_point_names.add(ep.name)
            except ValueError as exc:
                self._plugin_errors[ep.name] = str(exc)

    def reload_entry_points(self) -> None:
        for name in self._entry_point_names:
            self._specs.pop(name, None)
        self._entry_point_names.clear()
        self._plugin_errors.clear()
        self._entry_points_loaded = False

    def specs(self) -> dict[str, QuantizerSpec]:
        self._load_entry_points()
        return self._specs

    def plugin_errors(self) -> dict[str, str]:
        self._load_entry_points()
        return dict(self._plugin_errors)

    def get(self, name: str) -> QuantizerSpec:
        if not isinstance(name, str) or not name:
            raise TypeError(f"quantizer name must be a non-empty string, got {name!r}")
        specs = self.specs()
        if name in specs:
            return specs[name]
        if ":" in name:  # a direct reference: file.py:Name or package.module:Name
            return QuantizerSpec(name, name, family="plugin", source=name.rpartition(":")[0])
        close = difflib.get_close_matches(name, list(specs), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownQuantizerError(
            f"unknown quantizer {name!r}{hint} Registered: {', '.join(sorted(specs))}. "
            "A file or module can be named as 'path/to/file.py:Name' or 'package.module:Name'; "
            "a module whose @register_quantizer adds the name is imported with --plugins package.module "
            "(or plugins = [...] in the profile's [suite])."
        )


REGISTRY = _Registry()


def register_quantizer(
    name: str,
    target: str | Callable[..., Any] | None = None,
    *,
    family: str = "other",
    source: str = "vqbench",
    description: str = "",
    default: bool = False,
    tags: tuple[str, ...] = (),
):
    """Register a quantizer class or factory under ``name``.

    As a decorator: ``@register_quantizer("my-fsq", family="fsq")``. As a call with a lazy target:
    ``register_quantizer("my-fsq", "mypkg.quant:MyFSQ")``. A duplicate name raises ``ValueError``.
    The factory takes keyword config and should accept ``dim`` and ``codebook_size``.
    """
    if not isinstance(name, str) or not name or any(c in name for c in " :*?[]"):
        raise ValueError(
            f"quantizer name must be a non-empty string without spaces, ':' or globs, got {name!r}"
        )

    def add(obj: str | Callable[..., Any]):
        if not (isinstance(obj, str) or callable(obj)):
            raise TypeError(f"register_quantizer({name!r}) needs a class, factory or 'module:attr' string")
        doc = description or (_first_line(obj.__doc__) if callable(obj) else "")
        REGISTRY.add(QuantizerSpec(name, obj, family, source, doc, default, tuple(tags)))
        return obj

    return add if target is None else add(target)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n")[0]


def list_quantizers(pattern: str | list[str] | None = None, *, default_only: bool = False) -> list[str]:
    """Sorted registered names, filtered by glob pattern(s): ``"fsq*"`` or ``"fsq*,vq"``."""
    names = sorted(REGISTRY.specs())
    if default_only:
        names = [n for n in names if REGISTRY.specs()[n].default]
    if pattern is None:
        return names
    patterns = pattern.split(",") if isinstance(pattern, str) else list(pattern)
    patterns = [p.strip() for p in patterns if p.strip()]
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def get_quantizer_spec(name: str) -> QuantizerSpec:
    """The registry entry for ``name`` (or an ad-hoc entry for a ``file.py:Name`` reference)."""
    return REGISTRY.get(name)


def plugin_errors() -> dict[str, str]:
    """Entry points that could not be registered, by name, with their error."""
    return REGISTRY.plugin_errors()


def reload_entry_points() -> None:
    """Read the ``vqbench.quantizers`` entry points again (after installing a plugin)."""
    REGISTRY.reload_entry_points()


#: Backends that every quantizer runs on any device: the module as built, and ``torch.compile``-d.
BUILTIN_BACKENDS = ("eager", "compile")


def offered_backends(name: str) -> dict[str, tuple[str, ...] | None]:
    """The backends that quantizer ``name`` offers, each with the device types it runs on (None: any).

    The one place where the suite learns them, for planning cells and for building them alike:
    ``eager`` and ``compile`` for every quantizer, plus the ``BACKENDS`` attribute of the registered
    factory (class or function), either a sequence of names (any device) or a mapping from name to
    device types, e.g. ``{"reference": None, "cpu": ("cpu",), "triton": ("cuda",)}``. Each such
    backend is passed to the factory as ``backend=``.
    """
    factory = REGISTRY.get(name).load()
    declared = getattr(factory, "BACKENDS", None) or ()
    where = f"quantizer {name!r}: BACKENDS"
    if isinstance(declared, str):
        raise TypeError(
            f"{where} must be a sequence of names or a mapping name -> device types, got {declared!r}"
        )
    items = declared.items() if isinstance(declared, dict) else ((b, None) for b in declared)
    out: dict[str, tuple[str, ...] | None] = {b: None for b in BUILTIN_BACKENDS}
    for backend, devices in items:
        if not isinstance(backend, str) or not backend or backend in BUILTIN_BACKENDS:
            raise ValueError(
                f"{where}: expected names other than {BUILTIN_BACKENDS} (offered to every quantizer), "
                f"got {backend!r}"
            )
        if devices is not None:
            if isinstance(devices, str) or not all(isinstance(d, str) and d for d in devices):
                raise TypeError(
                    f"{where}[{backend!r}]: expected None (any device) or a tuple of device types such as "
                    f"('cpu',) or ('cuda',), got {devices!r}"
                )
            devices = tuple(devices)
        out[backend] = devices
    return out


def backend_unavailable(offered: dict[str, tuple[str, ...] | None], backend: str, device: str) -> str:
    """'' when ``backend`` of ``offered`` (:func:`offered_backends`) runs on ``device``, else why not."""
    if backend not in offered:
        return f"backend {backend!r} is not offered; expected one of {', '.join(offered)}"
    types = offered[backend]
    kind = str(device).split(":")[0]
    if types is not None and kind not in types:
        return f"backend {backend!r} runs on {', '.join(types)} devices only, not on {device!r}"
    return ""


def create_quantizer(name: str, **config: Any):
    """Build the quantizer registered as ``name`` with ``config`` (e.g. ``codebook_size=2**12``)."""
    spec = REGISTRY.get(name)
    factory = spec.load()
    try:
        quantizer = factory(**config)
    except TypeError as exc:
        raise TypeError(f"quantizer {name!r} rejected config {config}: {exc}") from exc
    if not is_quantizer(quantizer):
        raise TypeError(
            f"quantizer {name!r} built a {type(quantizer).__name__}, which does not follow the protocol: "
            "expected an nn.Module with dim, codebook_size, num_codebooks, bits_per_token, indices_to_codes"
        )
    return quantizer
