"""One registry for every extension point: quantizers, datasets, benchmark engines, executors.

A registry maps names to specs (small dataclasses that say where the code lives and what it is).
Built-ins are registered as ``"module:attr"`` strings, so nothing is imported until used; installed
packages add specs through an entry-point group; a contract check runs on every spec as it is added,
so a broken registration fails when it is made, with a message that says what was expected.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from vqbench.errors import MissingFileError, UnknownNameError, UserError

#: Characters that a registered name must not hold (they mean lists, globs or references).
RESERVED_CHARS = " :*?[],"


class PluginLoadError(ImportError, UserError):
    """A plugin's module, file or entry point could not be imported."""


class Spec(Protocol):
    """What a registry holds: a named entry, with where it came from."""

    name: str
    source: str


S = TypeVar("S", bound=Spec)


def check_name(name: Any, what: str) -> str:
    """``name`` if it can be registered, else a UserError naming what was expected."""
    if not isinstance(name, str) or not name or any(c in name for c in RESERVED_CHARS):
        raise UserError(
            f"{what} name must be a non-empty string without spaces, ':', ',' or globs, got {name!r}"
        )
    return name


class Registry(Generic[S]):
    """Names to specs; entry points of ``group`` are read on first use.

    ``from_entry_point(ep)`` turns an entry point into a spec; ``check(spec)`` is the contract, run on
    every spec as it is added; ``fallback(name)`` may answer names that are not registered (a file
    reference), else an unknown name raises :class:`UnknownNameError` with the close matches.
    """

    def __init__(
        self,
        what: str,
        group: str,
        *,
        from_entry_point: Callable[[Any], S],
        check: Callable[[S], None] | None = None,
        fallback: Callable[[str], S | None] | None = None,
        hint: str = "",
        unknown: type[UnknownNameError] = UnknownNameError,
    ) -> None:
        self.what = what
        self.group = group
        self._from_entry_point = from_entry_point
        self._check = check
        self._fallback = fallback
        self._hint = hint
        self._unknown = unknown
        self._specs: dict[str, S] = {}
        self._plugin_errors: dict[str, str] = {}
        self._entry_point_names: set[str] = set()
        self._entry_points_loaded = False

    def add(self, spec: S, *, same: Callable[[S, S], bool] | None = None) -> S:
        """Register ``spec``; the same entry again is a no-op, another one under its name an error."""
        check_name(spec.name, self.what)
        if self._check is not None:
            self._check(spec)
        old = self._specs.get(spec.name)
        if old is not None:
            if old == spec or (same is not None and same(old, spec)):
                return old
            raise UserError(
                f"a {self.what} named {spec.name!r} is already registered (from {old.source}); "
                "choose another name"
            )
        self._specs[spec.name] = spec
        return spec

    def snapshot(self) -> tuple:
        """The registry's state, for :meth:`restore` (tests, and code that registers temporarily)."""
        return (
            dict(self._specs),
            dict(self._plugin_errors),
            set(self._entry_point_names),
            self._entry_points_loaded,
        )

    def restore(self, state: tuple) -> None:
        """Put back the state that :meth:`snapshot` returned."""
        specs, errors, names, loaded = state
        self._specs.clear()
        self._specs.update(specs)
        self._plugin_errors.clear()
        self._plugin_errors.update(errors)
        self._entry_point_names.clear()
        self._entry_point_names.update(names)
        self._entry_points_loaded = loaded

    def remove(self, name: str) -> None:
        """Forget ``name`` (for tests and for plugins that are reloaded)."""
        self._specs.pop(name, None)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.group):
            try:
                self.add(self._from_entry_point(ep))
                self._entry_point_names.add(ep.name)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the others
                self._plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"

    def reload_entry_points(self) -> None:
        """Read the entry points again (after a package was installed in this process)."""
        for name in self._entry_point_names:
            self._specs.pop(name, None)
        self._entry_point_names.clear()
        self._plugin_errors.clear()
        self._entry_points_loaded = False

    def specs(self) -> dict[str, S]:
        """Every registered spec by name, in registration order."""
        self._load_entry_points()
        return self._specs

    def plugin_errors(self) -> dict[str, str]:
        """Entry points that could not be registered, with why."""
        self._load_entry_points()
        return dict(self._plugin_errors)

    def names(self, pattern: str | list[str] | None = None) -> list[str]:
        """Sorted names, filtered by glob pattern(s): ``"fsq*"`` or ``"fsq,vq"``."""
        names = sorted(self.specs())
        if pattern is None:
            return names
        patterns = pattern.split(",") if isinstance(pattern, str) else list(pattern)
        patterns = [p.strip() for p in patterns if p.strip()]
        return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]

    def __contains__(self, name: object) -> bool:
        return name in self.specs()

    def __iter__(self) -> Iterator[str]:
        return iter(self.specs())

    def get(self, name: str) -> S:
        """The spec of ``name``; an unknown name raises with the close matches."""
        if not isinstance(name, str) or not name:
            raise UserError(f"{self.what} name must be a non-empty string, got {name!r}")
        specs = self.specs()
        if name in specs:
            return specs[name]
        if self._fallback is not None:
            spec = self._fallback(name)
            if spec is not None:
                return spec
        close = difflib.get_close_matches(name, list(specs), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "."
        raise self._unknown(
            f"unknown {self.what} {name!r}{hint} Registered: {', '.join(sorted(specs))}.{self._hint}"
        )


def entry_point_source(ep: Any) -> str:
    """The distribution that declares ``ep`` (for listings and errors)."""
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "entry point"


def load_reference(ref: str, what: str = "reference", *, callable_only: bool = True) -> Any:
    """Load ``module:attr`` or ``path/to/file.py:attr``; errors name the reference."""
    module_name, sep, attr = ref.rpartition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"{what}: expected 'module:attr' or 'path/to/file.py:attr', got {ref!r}")
    try:
        if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
            module = import_file(Path(module_name))
        else:
            module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # a plugin may fail in any way; report it by name
        detail = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, SystemExit):  # exit() while being imported: not a success
            detail = f"it called exit({exc.code!r}) while being imported"
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
    if callable_only and not callable(obj):
        raise PluginLoadError(f"{what}: {ref!r} is a {type(obj).__name__}, not a class or factory")
    return obj


def import_file(path: Path) -> Any:
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


def same_source(a: Any, b: Any) -> bool:
    """Two callables defined by the same code (one file imported as a plugin module and as a
    ``file.py:Name`` reference gives two module objects)."""
    if not (callable(a) and callable(b)) or getattr(a, "__qualname__", 1) != getattr(b, "__qualname__", 2):
        return False
    try:
        return inspect.getsourcefile(a) == inspect.getsourcefile(b) is not None
    except TypeError:
        return False


def first_line(doc: str | None) -> str:
    """The first line of a docstring (a registry listing's description)."""
    return (doc or "").strip().split("\n")[0]
