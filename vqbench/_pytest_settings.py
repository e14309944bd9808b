"""Settings of the pytest integration: the mode, the quantizer selection and the suite's sizes.

Nothing here imports torch unless quantizer patterns have to be checked against the registry.
"""

from __future__ import annotations

import difflib
import fnmatch
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_SUITE = "quick"
SMOKE_VECTORS = 64

# Sizes the pytest benchmarks use per suite; a profile's [pytest] table overrides them.
_SUITE_SIZES: dict[str, dict[str, Any]] = {
    "quick": {
        "sizes": [4096, 65536],
        "codebook_size": 2**10,
        "usage_tokens": 16384,
        "recon_steps": 150,
        "recon_batch": 256,
    },
    "standard": {
        "sizes": [4096, 65536, 2**20],
        "codebook_size": 2**12,
        "usage_tokens": 65536,
        "recon_steps": 500,
        "recon_batch": 256,
    },
    "full": {
        "sizes": [65536, 2**20, 2**22],
        "codebook_size": 2**14,
        "usage_tokens": 2**18,
        "recon_steps": 2000,
        "recon_batch": 1024,
    },
}
_SMOKE = {"sizes": [SMOKE_VECTORS], "usage_tokens": 512, "recon_steps": 2, "recon_batch": 16}


@dataclass(frozen=True)
class SuiteSizes:
    """What the pytest benchmarks run for one suite (or in smoke mode)."""

    name: str
    sizes: tuple[int, ...]
    codebook_size: int | None
    dim: int | None
    usage_tokens: int
    recon_steps: int
    recon_batch: int
    data_dim: int = 32


@dataclass(frozen=True)
class Settings:
    """The vqbench options of one pytest session."""

    enabled: bool  # --benchmark: real sizes through pytest-benchmark; else smoke mode
    patterns: tuple[str, ...] | None  # --benchmark-quantizers, split on commas
    suite: str  # --benchmark-suite: a profile name or a TOML path
    suite_sizes: SuiteSizes

    @property
    def mode(self) -> str:
        return "benchmark" if self.enabled else "smoke"


def _profiles_dir() -> Path:
    return Path(__file__).resolve().parent / "suite" / "profiles"


def list_suites() -> list[str]:
    """Suite names: the profiles shipped with vqbench, plus the built-in pytest sizes."""
    names = set(_SUITE_SIZES)
    folder = _profiles_dir()
    if folder.is_dir():
        names.update(p.stem for p in folder.glob("*.toml"))
    return sorted(names)


def resolve_suite(name: str, enabled: bool) -> SuiteSizes:
    """The pytest sizes for suite ``name`` (a profile name or a ``.toml`` path); ValueError if unknown."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"--benchmark-suite expects a suite name or a .toml file, got {name!r}")
    name = name.strip()
    path = Path(name)
    table: dict[str, Any] = {}
    is_file = name.endswith(".toml") or path.is_file()
    if is_file:
        if not path.is_file():
            raise ValueError(f"--benchmark-suite: no such profile file: {name}")
        table = _read_pytest_table(path)
        base = dict(_SUITE_SIZES.get(path.stem, _SUITE_SIZES[DEFAULT_SUITE]))
    else:
        known = list_suites()
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise ValueError(
                f"--benchmark-suite: unknown suite {name!r}{hint}; expected one of {', '.join(known)} "
                "or a path to a .toml profile"
            )
        profile = _profiles_dir() / f"{name}.toml"
        if profile.is_file():
            table = _read_pytest_table(profile)
        base = dict(_SUITE_SIZES.get(name, _SUITE_SIZES[DEFAULT_SUITE]))
    base.update(table)
    if not enabled:
        base.update(_SMOKE)
    sizes = base["sizes"]
    if not isinstance(sizes, list) or not sizes or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise ValueError(
            f"suite {name!r}: [pytest] sizes must be a non-empty list of positive ints, got {sizes!r}"
        )
    return SuiteSizes(
        name=path.stem if is_file else name,
        sizes=tuple(sizes),
        codebook_size=base.get("codebook_size"),
        dim=base.get("dim"),
        usage_tokens=int(base["usage_tokens"]),
        recon_steps=int(base["recon_steps"]),
        recon_batch=int(base["recon_batch"]),
        data_dim=int(base.get("data_dim", 32)),
    )


def _read_pytest_table(path: Path) -> dict[str, Any]:
    """The optional ``[pytest]`` table of a profile (sizes, codebook_size, dim, usage_tokens, ...)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"--benchmark-suite: cannot read profile {path}: {exc}") from exc
    table = data.get("pytest", {})
    if not isinstance(table, dict):
        raise ValueError(f"profile {path}: [pytest] must be a table, got {type(table).__name__}")
    known = set(_SUITE_SIZES[DEFAULT_SUITE]) | {"dim", "data_dim"}
    unknown = set(table) - known
    if unknown:
        raise ValueError(
            f"profile {path}: unknown [pytest] keys {sorted(unknown)}; expected some of {sorted(known)}"
        )
    return table


def split_patterns(text: str | None) -> tuple[str, ...] | None:
    """``"fsq*, vq"`` -> ``("fsq*", "vq")``; None stays None; an empty list is an error."""
    if text is None:
        return None
    patterns = tuple(p.strip() for p in text.split(",") if p.strip())
    if not patterns:
        raise ValueError(f"--benchmark-quantizers expects comma-separated names or globs, got {text!r}")
    return patterns


def _is_reference(pattern: str) -> bool:
    return ":" in pattern


def expand_patterns(patterns: tuple[str, ...], what: str = "--benchmark-quantizers") -> list[str]:
    """Registered names matching each pattern (references ``file.py:Name`` kept as given).

    Raises ValueError for a pattern that matches nothing, with close matches and the registered names.
    """
    from vqbench.quantizers import get_quantizer_spec, list_quantizers

    registered = list_quantizers()
    names: list[str] = []
    for pattern in patterns:
        if _is_reference(pattern):
            get_quantizer_spec(pattern).load()  # fails now, with the plugin's own message
            matched = [pattern]
        else:
            matched = [n for n in registered if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            close = difflib.get_close_matches(pattern, registered, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise ValueError(
                f"{what}: pattern {pattern!r} matches no registered quantizer{hint}. "
                f"Registered: {', '.join(registered)}"
            )
        names.extend(n for n in matched if n not in names)
    return names


def select_quantizers(marker_patterns: tuple[str, ...], option_patterns: tuple[str, ...] | None) -> list[str]:
    """The quantizers a test runs over.

    Without marker patterns: those the option names, else the default set. With marker patterns
    (a test's own candidates and baselines): those, filtered by the option when it is given.
    """
    from vqbench.quantizers import list_quantizers

    if not marker_patterns:
        if option_patterns is None:
            return list_quantizers(default_only=True)
        return expand_patterns(option_patterns)
    names = expand_patterns(marker_patterns, what="vqbench_quantizers marker")
    if option_patterns is None:
        return names
    return [n for n in names if any(n == p or fnmatch.fnmatchcase(n, p) for p in option_patterns)]


__all__ = [
    "DEFAULT_SUITE",
    "SMOKE_VECTORS",
    "Settings",
    "SuiteSizes",
    "expand_patterns",
    "list_suites",
    "resolve_suite",
    "select_quantizers",
    "split_patterns",
]
