"""The quantizer registry: names to factories, loaded lazily.

Three ways in:
- built-ins and the ``@register_quantizer`` decorator (``target`` may be a ``"module:attr"`` string,
  so that nothing is imported until the quantizer is built);
- the entry-point group ``vqbench.quantizers`` of installed packages;
- a reference used directly as the name: ``path/to/file.py:Name`` or ``package.module:Name``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vqbench._registry import (
    PluginLoadError,
    Registry,
    entry_point_source,
    first_line,
    load_reference,
    same_source,
)
from vqbench.errors import UnknownNameError

from ._protocol import is_quantizer

ENTRY_POINT_GROUP = "vqbench.quantizers"

#: How a quantizer's work and memory per token grow: ``"dense"``, with the codebook size (its forward
#: computes a tokens x codes matrix of distances or soft assignments); ``"linear"``, not at all.
MEMORY_MODELS = ("dense", "linear")
#: What a quantizer registered without these declarations gets (plugins): no tokens x codes matrix
#: in the memory check or the dry run's step cost, and no settings written into its cells' config.
DEFAULT_MEMORY = "linear"
#: What every built-in must declare when it is registered.
BUILTIN_DECLARATIONS = ("family", "memory", "settings", "description")


class UnknownQuantizerError(UnknownNameError):
    """Raised for a name that is neither registered nor a loadable reference."""


@dataclass
class QuantizerSpec:
    """One registry entry: where the factory lives and what it is.

    ``memory`` is one of :data:`MEMORY_MODELS`. ``settings`` are the keyword config that the factory
    applies by default (its paper's settings), as a dict or a lazy ``"module:attr"`` reference to
    one; a profile with ``registered_settings = true`` writes them into each cell's config.
    ``builtin`` marks vqbench's own registrations, which must declare :data:`BUILTIN_DECLARATIONS`.
    """

    name: str
    target: str | Callable[..., Any]
    family: str = "other"
    source: str = "vqbench"
    description: str = ""
    default: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)
    memory: str = DEFAULT_MEMORY
    settings: dict[str, Any] | str = field(default_factory=dict)
    builtin: bool = False

    def load(self) -> Callable[..., Any]:
        """Import and return the factory (class or function)."""
        if callable(self.target):
            return self.target
        factory = load_reference(self.target, what=f"quantizer {self.name!r}")
        self.target = factory
        return factory

    def load_settings(self) -> dict[str, Any]:
        """The default settings as a new dict (a ``"module:attr"`` reference is imported once)."""
        if isinstance(self.settings, str):
            what = f"quantizer {self.name!r}: settings"
            value = load_reference(self.settings, what=what, callable_only=False)
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise TypeError(f"{what} {self.settings!r} is a {type(value).__name__}, not a dict of config")
            self.settings = value
        return dict(self.settings)


def _from_entry_point(ep: Any) -> QuantizerSpec:
    return QuantizerSpec(ep.name, ep.value, family="plugin", source=entry_point_source(ep), default=False)


def _reference(name: str) -> QuantizerSpec | None:
    """An ad-hoc entry for a direct reference: ``file.py:Name`` or ``package.module:Name``."""
    if ":" in name:
        return QuantizerSpec(name, name, family="plugin", source=name.rpartition(":")[0])
    return None


def _same(old: QuantizerSpec, new: QuantizerSpec) -> bool:
    """The same object registered again (a module imported twice, or as a file and as a module)."""
    return old.target is new.target or old.target == new.target or same_source(old.target, new.target)


class _QuantizerRegistry(Registry[QuantizerSpec]):
    def add(self, spec: QuantizerSpec, *, same: Any = _same) -> QuantizerSpec:
        return super().add(spec, same=same)


REGISTRY = _QuantizerRegistry(
    "quantizer",
    ENTRY_POINT_GROUP,
    from_entry_point=_from_entry_point,
    fallback=_reference,
    unknown=UnknownQuantizerError,
    hint=(
        " A file or module can be named as 'path/to/file.py:Name' or 'package.module:Name'; "
        "a module whose @register_quantizer adds the name is imported with --plugins package.module "
        "(or plugins = [...] in the profile's [suite])."
    ),
)


def register_quantizer(
    name: str,
    target: str | Callable[..., Any] | None = None,
    *,
    family: str | None = None,
    source: str = "vqbench",
    description: str = "",
    default: bool = False,
    tags: tuple[str, ...] = (),
    memory: str | None = None,
    settings: dict[str, Any] | str | None = None,
    builtin: bool = False,
):
    """Register a quantizer class or factory under ``name``.

    As a decorator: ``@register_quantizer("my-fsq", family="fsq")``. As a call with a lazy target:
    ``register_quantizer("my-fsq", "mypkg.quant:MyFSQ")``. A duplicate name raises ``ValueError``.
    The factory takes keyword config and should accept ``dim`` and ``codebook_size``.

    ``memory`` (:data:`MEMORY_MODELS`, default :data:`DEFAULT_MEMORY`) says whether the work per
    token grows with the codebook size; ``settings`` (default none) are the config the factory
    applies by default, a dict or a ``"module:attr"`` reference. ``builtin=True`` (vqbench's own
    registrations) requires ``family``, ``memory``, ``settings`` and ``description``.
    """
    if not isinstance(name, str) or not name or any(c in name for c in " :*?[]"):
        raise ValueError(
            f"quantizer name must be a non-empty string without spaces, ':' or globs, got {name!r}"
        )
    given = {"family": family, "memory": memory, "settings": settings, "description": description or None}
    missing = [key for key in BUILTIN_DECLARATIONS if given[key] is None]
    if builtin and missing:
        raise ValueError(
            f"built-in quantizer {name!r} does not declare {', '.join(missing)}: a built-in declares "
            f"family=, memory= (one of {MEMORY_MODELS}), settings= (its default config: a dict, or "
            "'module:attr' of one; {} for none) and description= where it is registered"
        )
    _check_declarations(name, family, memory, settings)

    def add(obj: str | Callable[..., Any]):
        if not (isinstance(obj, str) or callable(obj)):
            raise TypeError(f"register_quantizer({name!r}) needs a class, factory or 'module:attr' string")
        doc = description or (first_line(obj.__doc__) if callable(obj) else "")
        spec = QuantizerSpec(
            name,
            obj,
            family=family or "other",
            source=source,
            description=doc,
            default=default,
            tags=tuple(tags),
            memory=memory or DEFAULT_MEMORY,
            settings=dict(settings) if isinstance(settings, dict) else settings or {},
            builtin=builtin,
        )
        REGISTRY.add(spec)
        return obj

    return add if target is None else add(target)


def _check_declarations(name: str, family: Any, memory: Any, settings: Any) -> None:
    """The declarations of a registration, checked when it is made."""
    where = f"register_quantizer({name!r})"
    if family is not None and (not isinstance(family, str) or not family.strip()):
        raise ValueError(f"{where}: family must be a non-empty string such as 'fsq' or 'vq', got {family!r}")
    if memory is not None and memory not in MEMORY_MODELS:
        raise ValueError(
            f"{where}: memory must be one of {MEMORY_MODELS} ('dense': work per token grows with the "
            f"codebook size), got {memory!r}"
        )
    if settings is None or isinstance(settings, dict) and all(isinstance(k, str) for k in settings):
        return
    if isinstance(settings, str) and settings.rpartition(":")[0] and settings.rpartition(":")[2]:
        return
    raise TypeError(
        f"{where}: settings must be a dict of keyword config or a 'module:attr' reference to one, "
        f"got {settings!r}"
    )


def list_quantizers(pattern: str | list[str] | None = None, *, default_only: bool = False) -> list[str]:
    """Sorted registered names, filtered by glob pattern(s): ``"fsq*"`` or ``"fsq*,vq"``."""
    names = REGISTRY.names(pattern)
    return [n for n in names if REGISTRY.specs()[n].default] if default_only else names


def default_settings(name: str) -> dict[str, Any]:
    """The settings quantizer ``name`` applies by default, as declared where it is registered."""
    return REGISTRY.get(name).load_settings()


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
BASE_BACKENDS = ("eager", "compile")


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
    out: dict[str, tuple[str, ...] | None] = {b: None for b in BASE_BACKENDS}
    for backend, devices in items:
        if not isinstance(backend, str) or not backend or backend in BASE_BACKENDS:
            raise ValueError(
                f"{where}: expected names other than {BASE_BACKENDS} (offered to every quantizer), "
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


__all__ = [
    "BASE_BACKENDS",
    "ENTRY_POINT_GROUP",
    "MEMORY_MODELS",
    "REGISTRY",
    "PluginLoadError",
    "QuantizerSpec",
    "UnknownQuantizerError",
    "backend_unavailable",
    "create_quantizer",
    "default_settings",
    "get_quantizer_spec",
    "list_quantizers",
    "load_reference",
    "offered_backends",
    "plugin_errors",
    "register_quantizer",
    "reload_entry_points",
]
