"""A few eval images and their reconstructions, stored inside a row's ``extra`` as plain data.

The reconstruction engine puts ``extra["samples"] = encode_samples(originals, reconstructions)``
on one row of an image cell (its PSNR row); reports draw them. Images are uint8, base64-encoded
(C order), so a handful of small images cost a few tens of kilobytes and stay JSON.
"""

from __future__ import annotations

import base64
from typing import Any

MAX_SAMPLES = 8


def _as_uint8(images: Any, what: str) -> Any:
    import numpy as np

    if hasattr(images, "detach"):
        images = images.detach().float().cpu().numpy()
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim == 3:  # (N, H, W) -> (N, 1, H, W)
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(f"{what} must be images (N, C, H, W) with C in (1, 3) or (N, H, W), got {arr.shape}")
    if not np.isfinite(arr).all():
        arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)


def encode_samples(originals: Any, reconstructions: Any, limit: int = MAX_SAMPLES) -> dict:
    """Images in [0, 1] (numpy or torch, (N, C, H, W) or (N, H, W)) as a JSON-ready dict."""
    orig = _as_uint8(originals, "originals")[:limit]
    recon = _as_uint8(reconstructions, "reconstructions")[:limit]
    if orig.shape != recon.shape:
        raise ValueError(f"originals and reconstructions differ in shape: {orig.shape} vs {recon.shape}")
    return {
        "shape": list(orig.shape),
        "dtype": "uint8",
        "original": base64.b64encode(orig.tobytes()).decode("ascii"),
        "reconstruction": base64.b64encode(recon.tobytes()).decode("ascii"),
    }


def decode_samples(samples: dict) -> tuple[Any, Any]:
    """``(originals, reconstructions)`` as uint8 arrays (N, C, H, W) from ``encode_samples`` output."""
    import numpy as np

    if not isinstance(samples, dict):
        raise TypeError(f"samples must be a dict from encode_samples, got {type(samples).__name__}")
    shape = samples.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 4
        or not all(isinstance(s, int) and s > 0 for s in shape)
        or shape[1] not in (1, 3)
    ):
        raise ValueError(f"samples shape must be [N, C, H, W] with C in (1, 3), got {shape!r}")
    size = int(np.prod(shape))
    out = []
    for key in ("original", "reconstruction"):
        try:
            raw = base64.b64decode(samples.get(key, ""), validate=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"samples {key!r} is not base64 data") from exc
        if len(raw) != size:
            raise ValueError(f"samples {key!r} holds {len(raw)} bytes, expected {size} for shape {shape}")
        out.append(np.frombuffer(raw, dtype=np.uint8).reshape(shape))
    return out[0], out[1]


__all__ = ["MAX_SAMPLES", "decode_samples", "encode_samples"]
