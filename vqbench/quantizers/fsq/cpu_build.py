"""The FSQ CPU kernel's build: the C program ``fsq_kernel.c`` compiled, cached and loaded.

Compiled on first use with the system C compiler (``$CC``, else ``cc``/``gcc``/``clang``) and
cached under ``$VQBENCH_CACHE_DIR`` (default ``~/.cache/vqbench``, else a folder of this user's
under the temporary directory), keyed by the source, the compiler, its flags and the CPU. Set
``VQBENCH_FSQ_CPU_KERNEL=0`` to turn it off. Without a compiler the kernel is unavailable.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from importlib import resources
from pathlib import Path

#: The C program, shipped beside this module as package data.
SOURCE_FILE = "fsq_kernel.c"


_BLOCK_LIMIT = 4096  # elements of the kernel's per-block level buffer
_ABI_VERSION = 3  # the kernel's entry points: forward, decode, backward
_ARCH_FLAGS = (["-march=native", "-mprefer-vector-width=512"], ["-march=native"], [])
_BASE_FLAGS = ["-O3", "-std=c99", "-shared", "-fPIC", "-ffp-contract=off", "-fno-math-errno"]

_lock = threading.Lock()
_state: dict[str, object] = {}


def kernel_source() -> str:
    """The C program's text, read from the package (``fsq_kernel.c``)."""
    return resources.files(__package__).joinpath(SOURCE_FILE).read_text(encoding="utf-8")


def _cache_dir() -> Path:
    base = os.environ.get("VQBENCH_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "vqbench"


def _fallback_dir() -> Path:
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"vqbench-{user}"


def find_compiler() -> str | None:
    """The C compiler to build with: ``$CC``, else ``cc``, ``gcc`` or ``clang`` (None when there is none)."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return line.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build(compiler: str) -> Path:
    """Compile the kernel (or find it in the cache) and return the shared library's path."""
    source = kernel_source()
    errors = []
    for arch in _ARCH_FLAGS:
        flags = _BASE_FLAGS + arch
        key = hashlib.sha256(
            "\n".join([source, compiler, " ".join(flags), platform.machine(), _cpu_signature()]).encode()
        ).hexdigest()[:20]
        for folder in (_cache_dir(), _fallback_dir()):
            target = folder / f"fsq_cpu_{key}.so"
            try:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                if hasattr(os, "getuid") and folder.stat().st_uid != os.getuid():
                    raise OSError(f"{folder} belongs to another user; not loading code from it")
                if target.exists():
                    return target
                fd, tmp_src = tempfile.mkstemp(suffix=".c", dir=folder)
                with os.fdopen(fd, "w") as fh:
                    fh.write(source)
                tmp_lib = tmp_src[:-2] + ".so"
                proc = subprocess.run(
                    [compiler, *flags, tmp_src, "-o", tmp_lib], capture_output=True, text=True, timeout=120
                )
                os.unlink(tmp_src)
                if proc.returncode != 0:
                    Path(tmp_lib).unlink(missing_ok=True)
                    errors.append(f"{' '.join(arch) or 'generic'}: {proc.stderr.strip()[-300:]}")
                    break  # a flag problem, not a folder problem: try the next flags
                os.replace(tmp_lib, target)  # atomic: concurrent builds cannot leave a torn file
                return target
            except OSError as exc:
                errors.append(f"{folder}: {exc}")
                continue
    raise RuntimeError("could not compile the FSQ CPU kernel: " + " | ".join(errors))


def load() -> ctypes.CDLL | None:
    """The loaded kernel library (built on the first call), or None where it cannot run."""
    with _lock:
        if "lib" in _state:
            return _state["lib"]  # type: ignore[return-value]
        lib = None
        if os.environ.get("VQBENCH_FSQ_CPU_KERNEL", "1").strip().lower() in ("0", "false", "no", "off"):
            _state["reason"] = "disabled by VQBENCH_FSQ_CPU_KERNEL=0"
        elif (compiler := find_compiler()) is None:
            _state["reason"] = "no C compiler found ($CC, cc, gcc or clang)"
        else:
            try:
                lib = ctypes.CDLL(str(build(compiler)))
                fn = lib.fsq_forward
                fn.restype = ctypes.c_int64
                fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] + [ctypes.c_int32] * 3
                fn.argtypes += [ctypes.c_void_p] * 4 + [ctypes.c_int32] * 3
                dec = lib.fsq_decode
                dec.restype = ctypes.c_int64
                dec.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64]
                dec.argtypes += [ctypes.c_int32, ctypes.c_uint64, ctypes.c_uint32] + [ctypes.c_void_p] * 2
                bwd = lib.fsq_backward
                bwd.restype = None
                bwd.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] + [ctypes.c_int32] * 2
                bwd.argtypes += [ctypes.c_void_p] * 4 + [ctypes.c_int32]
                if lib.fsq_block_limit() != _BLOCK_LIMIT or lib.fsq_abi_version() != _ABI_VERSION:
                    raise RuntimeError("stale FSQ CPU kernel in the cache")
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                lib = None
                _state["reason"] = str(exc)
        _state["lib"] = lib
        return lib


def available() -> bool:
    """Whether the compiled kernel can run here (compiles it on the first call)."""
    return load() is not None


def unavailable_reason() -> str:
    """Why :func:`available` is False ('' when it is True)."""
    return "" if load() is not None else str(_state.get("reason", "unknown"))


def reload() -> bool:
    """Load the kernel afresh (reading ``VQBENCH_FSQ_CPU_KERNEL`` and ``$CC`` again); whether it runs."""
    with _lock:
        _state.pop("lib", None)
        _state.pop("reason", None)
    return available()


__all__ = [
    "SOURCE_FILE",
    "available",
    "build",
    "find_compiler",
    "kernel_source",
    "load",
    "reload",
    "unavailable_reason",
]
