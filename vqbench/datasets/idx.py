"""A reader for the IDX files of MNIST and Fashion-MNIST (raw or gzip-compressed)."""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np

from ._base import file_key

# type byte -> big-endian numpy dtype
_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path, *, copy: bool = True) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` decompressed), cached in-process by path and mtime.

    With ``copy=False`` the cached array itself comes back: read it, never write to it.
    """
    array = _read_cached(file_key(Path(path)))
    return array.copy() if copy else array


@functools.lru_cache(maxsize=8)
def _read_cached(key: tuple[str, int, int]) -> np.ndarray:
    path = Path(key[0])
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read IDX file {path}: {exc}") from exc
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, what: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes: magic (0, 0, type, ndim), ndim big-endian uint32 sizes, then the data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES or raw[3] == 0:
        raise ValueError(
            f"{what}: not an IDX file (expected magic bytes 00 00 <type> <ndim> with type in "
            f"{', '.join(hex(t) for t in _TYPES)}, got {raw[:4].hex(' ') or 'nothing'})"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{what}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions declared)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_TYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{what}: IDX header declares shape {shape} of {dtype.str} ({expected} bytes with header), "
            f"the file has {len(raw)} bytes"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when the name ends in ``.gz``)."""
    path = Path(path)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _TYPES.items()}
    dtype = np.dtype(array.dtype).newbyteorder("=")
    if dtype not in codes:
        raise ValueError(
            f"IDX cannot store dtype {array.dtype}; expected one of {', '.join(_TYPES.values())}"
        )
    header = bytes([0, 0, codes[dtype], array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    data = header + np.ascontiguousarray(array, dtype=_TYPES[codes[dtype]]).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(data)
    return path
