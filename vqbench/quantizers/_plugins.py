"""Plugin modules: imported for their ``@register_quantizer`` side effects, in every process.

A suite names them with ``--plugins pkg.module[,..]`` or ``plugins = [...]`` in a profile's
``[suite]``; the coordinator imports them before it resolves names, and every worker imports them
before its first cell, with the same extra folders on its import path (the current folder, the
folders of ``file.py:Name`` candidates).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from vqbench.errors import UserError

from ._registry import PluginLoadError

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def plugin_names(value: str | Iterable[str] | None, where: str = "--plugins") -> tuple[str, ...]:
    """Module names from ``"a.b,c"`` or a list, checked to be dotted module names, without repeats."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{where}: expected module names such as 'my_pkg.quantizers', got {item!r}")
        name = item.strip()
        if not name:
            continue
        if not _MODULE_NAME.match(name) or name.endswith(".py"):
            hint = ""
            if name.endswith(".py") or "/" in name or "\\" in name:
                hint = (
                    "; a plugin is imported by module name (run from its folder and give "
                    f"{name.replace(chr(92), '/').rsplit('/', 1)[-1].removesuffix('.py')!r}), "
                    "or name one class as 'path/to/file.py:Name' in --quantizers/--candidate"
                )
            raise UserError(
                f"{where}: expected a module name such as 'my_pkg.quantizers', got {name!r}{hint}"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


PLUGINS_HELP = (
    "modules to import (comma-separated, e.g. my_pkg.quantizers) here and in every worker before "
    "anything runs, so that their @register_quantizer names can be used; beside the profile's "
    "[suite] plugins"
)


def add_plugins_option(parser: Any) -> None:
    """``--plugins MODULES`` on a command's argparse parser."""
    parser.add_argument("--plugins", default=None, metavar="MODULES", help=PLUGINS_HELP)


def add_import_path(paths: Sequence[str]) -> None:
    """Append ``paths`` to ``sys.path`` (those not there yet), after the entries already there."""
    added = False
    for path in paths:
        if path and path not in sys.path:
            sys.path.append(path)
            added = True
    if added:
        importlib.invalidate_caches()


def import_plugins(modules: Sequence[str], paths: Sequence[str] = ()) -> None:
    """Import each plugin module (its decorators register quantizers); errors name the module."""
    add_import_path(paths)
    for name in modules:
        try:
            importlib.import_module(name)
        except (Exception, SystemExit) as exc:  # a plugin may fail in any way; name it
            detail = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, SystemExit):  # exit() while being imported: not a success
                detail = f"it called exit({exc.code!r}) while being imported"
            where = ""
            if isinstance(exc, ModuleNotFoundError) and exc.name and name.startswith(exc.name):
                where = f" (searched the installed packages and {', '.join(paths) or 'sys.path'})"
            raise PluginLoadError(f"plugin module {name!r} could not be imported: {detail}{where}") from exc


__all__ = ["PLUGINS_HELP", "add_import_path", "add_plugins_option", "import_plugins", "plugin_names"]
