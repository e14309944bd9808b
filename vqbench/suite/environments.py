"""Dependency environments: the same suite under other package versions, measured side by side.

An environment is named by pip requirements (``"vector-quantize-pytorch==1.32.0"``, several
separated by spaces). It is built once and cached under ``.vqbench/envs/`` as a virtual
environment that sees the running one's packages (a ``.pth`` file adds its site folders after the
environment's own) and holds only what its requirements change, so torch and vqbench itself are
shared, not copied. Its workers are started with its interpreter; their rows go to a run of their
own, whose fingerprint that interpreter measures.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import site
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

from vqbench.errors import UserError

_READY = "vqbench-environment.json"


@dataclass(frozen=True)
class Environment:
    """A built environment: its requirements (the label rows and reports use) and its interpreter."""

    spec: str
    python: str


def requirements(spec: str) -> list[str]:
    """The pip requirements of an environment spec; a clear error for an empty or malformed one."""
    try:
        parts = shlex.split(spec)
    except ValueError as exc:
        raise UserError(f"--env expects pip requirements such as 'pkg==1.2', got {spec!r}: {exc}") from None
    if not parts or any(p.startswith("-") for p in parts):
        raise UserError(
            f"--env expects pip requirements such as 'vector-quantize-pytorch==1.32.0' (no pip "
            f"options), got {spec!r}"
        )
    return parts


def _base_site_folders() -> list[str]:
    folders = [*site.getsitepackages(), site.getusersitepackages()]
    return [f for f in folders if os.path.isdir(f)]


def build_environment(spec: str, root: Path) -> Environment:
    """Build (or reuse) the environment for ``spec`` under ``root``; pip's output goes to its log."""
    from filelock import FileLock

    reqs = requirements(spec)
    key = json.dumps({"requirements": sorted(reqs), "prefix": sys.prefix, "python": sys.version})
    folder = root / hashlib.sha256(key.encode()).hexdigest()[:16]
    python = folder / "bin" / "python"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if (folder / _READY).is_file():
            return Environment(spec, str(python))
        venv.EnvBuilder(clear=True, with_pip=False, symlinks=True).create(folder)
        own = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        lines = [f"import site; site.addsitedir({f!r})" for f in _base_site_folders()]
        Path(own, "_vqbench_base.pth").write_text("\n".join(lines) + "\n")
        log = folder / "pip.log"
        with log.open("w") as out:
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", *reqs],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        if done.returncode != 0:
            tail = log.read_text()[-1500:]
            raise UserError(f"pip could not build the environment {spec!r} (log: {log}):\n{tail}")
        (folder / _READY).write_text(json.dumps({"spec": spec, "requirements": reqs}))
    return Environment(spec, str(python))


def fingerprint(env: Environment, threads: int | None) -> dict:
    """The environment fingerprint as ``env``'s interpreter measures it (package versions included)."""
    code = (
        "import json, sys; from vqbench.results import environment_fingerprint; "
        f"json.dump(environment_fingerprint(threads={threads!r}), sys.stdout)"
    )
    done = subprocess.run([env.python, "-c", code], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise UserError(f"the environment {env.spec!r} cannot import vqbench:\n{done.stderr[-1500:]}")
    return {**json.loads(done.stdout), "environment_spec": env.spec}
