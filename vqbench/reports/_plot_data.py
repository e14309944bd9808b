"""What the report plots draw, taken from a run's prepared rows (see ``_data.prepare``).

Only measured rows are drawn; error and skipped rows are named in the caption (``not_drawn``)
instead, never drawn as zeros.
"""

from __future__ import annotations

import io
import math
from typing import Any

from vqbench.engines import view_of

_SIZE_KEYS = ("size", "num_vectors", "batch_size")
#: The held-out figures of training curves, with their axis labels.
CURVE_METRICS = {"psnr": "held-out PSNR [dB]", "utilization": "held-out utilization", "loss": "held-out MSE"}


def not_drawn(frame: Any, mask: Any) -> str:
    """A caption sentence that names the quantizers whose rows under ``mask`` did not measure."""
    bad = frame[mask & frame["status"].ne("ok")]
    if bad.empty:
        return ""
    names = sorted({f"{q} ({s})" for q, s in zip(bad["quantizer"], bad["status"], strict=True)})
    return " Not drawn: " + ", ".join(names[:12]) + (" ..." if len(names) > 12 else "") + "."


def setting_labels(frame: Any) -> Any:
    """quantizer, plus its config where one quantizer appears with several configs."""
    multi = frame.groupby("quantizer")["config_label"].transform("nunique") > 1
    return [
        f"{q}\n{c}" if m and c else q
        for q, c, m in zip(frame["quantizer"], frame["config_label"], multi, strict=True)
    ]


def size_of(ext: dict) -> float:
    """The problem size that a row's extra names (0 when none)."""
    for key in _SIZE_KEYS:
        value = ext.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return 0.0


def throughput_bars(frame: Any) -> tuple[Any, str, str, list[str]] | None:
    """The bars of the throughput figure, the metric they show, its unit and the operations in
    reading order; a bar per quantizer setting, backend, device and operation, at the largest size
    measured (None when the run measured no rate)."""
    is_bench = frame["benchmark"].map(view_of).eq("operations")
    rates = frame[is_bench & frame["status"].eq("ok") & frame["unit"].str.endswith("/s")]
    if rates.empty:
        return None
    metric = rates["base_metric"].value_counts().index[0]
    preferred = [m for m in ("vectors_per_s",) if m in set(rates["base_metric"])]
    metric = preferred[0] if preferred else metric
    data = rates[rates["base_metric"] == metric].copy()
    unit = data["unit"].iloc[0]
    data["operation"] = data["operation"].replace("", "all")
    data["size"] = [size_of(e) for e in data["ext"]]
    # the largest size measured for each bar
    data["order"] = range(len(data))
    data = (
        data.sort_values("size")
        .groupby(["quantizer", "config_label", "backend", "device", "operation"], as_index=False)
        .last()
        .sort_values("order")
    )
    data["label"] = setting_labels(data)
    ops = list(
        dict.fromkeys(
            o
            for o in ("forward", "train", "train_step", "encode", "decode", "all")
            if o in set(data["operation"])
        )
    )
    ops += [o for o in dict.fromkeys(data["operation"]) if o not in ops]
    return data, metric, unit, ops


def utilization_points(frame: Any) -> Any | None:
    """Mean utilization per quantizer, codebook size and ``measured`` (benchmark · dataset)."""
    is_util = frame["base_metric"] == "utilization"
    data = frame[is_util & frame["status"].eq("ok") & frame["codebook_size"].notna()].copy()
    if data.empty:
        return None
    data["codebook_size"] = data["codebook_size"].astype(float)
    data["measured"] = [
        f"{b}" + (f" · {d}" if d else "") for b, d in zip(data["benchmark"], data["dataset"], strict=True)
    ]
    return data.groupby(["quantizer", "measured", "codebook_size"], as_index=False)["value"].mean()


def _bits_per_token(frame: Any) -> dict[tuple, float]:
    bits: dict[tuple, float] = {}
    rows = frame[(frame["metric"] == "bits_per_token") & frame["status"].eq("ok")]
    for cell, dataset, value in zip(rows["cell_id"], rows["dataset"], rows["value"], strict=True):
        bits[(cell, dataset)] = float(value)
    return bits


def _bool_series(values: list[bool], index: Any) -> Any:
    """A boolean pandas Series on ``index``."""
    import pandas as pd

    return pd.Series(values, index=index, dtype=bool)


def rate_distortion_points(frame: Any) -> tuple[Any, dict] | None:
    """Mean PSNR per quantizer, dataset and bits per token, and the no-quantizer ceiling's PSNR per
    dataset; bits per token are measured where a run holds them, else log2(codebook size) x the
    number of codebooks."""
    is_psnr = frame["metric"].str.lower().eq("psnr")
    psnr = frame[is_psnr & frame["status"].eq("ok")].copy()
    if psnr.empty:
        return None
    known = _bits_per_token(frame)
    bits = []
    for cell, dataset, ext, cfg, size in zip(
        psnr["cell_id"], psnr["dataset"], psnr["ext"], psnr["cfg"], psnr["codebook_size"], strict=True
    ):
        value = known.get((cell, dataset), ext.get("bits_per_token"))
        if value is None and size is not None and size == size:
            books = cfg.get("num_codebooks") or cfg.get("num_quantizers") or 1
            value = math.log2(size) * books if isinstance(books, int) else None
        bits.append(value)
    psnr["bits"] = bits
    is_ceiling = [bool(e.get("ceiling")) for e in psnr["ext"]]
    ceilings = psnr[is_ceiling].groupby("dataset")["value"].mean().to_dict()
    psnr = psnr[psnr["bits"].notna() & ~_bool_series(is_ceiling, psnr.index)]
    if psnr.empty:
        return None
    psnr["bits"] = psnr["bits"].astype(float)
    return psnr.groupby(["quantizer", "dataset", "bits"], as_index=False)["value"].mean(), ceilings


def strips(ext: dict) -> tuple[Any, Any] | None:
    """(originals, reconstructions) as float images (H, W, C) in [0, 1] from a row's extra:
    ``reconstructions_png`` (a base64 PNG, originals on the top half) or ``samples`` (encode_samples)."""
    import base64

    import numpy as np

    if isinstance(ext.get("reconstructions_png"), str):
        from matplotlib.image import imread

        try:
            img = imread(
                io.BytesIO(base64.b64decode(ext["reconstructions_png"], validate=True)), format="png"
            )
        except (ValueError, OSError, SyntaxError):
            return None
        img = np.asarray(img, dtype=np.float32)
        if img.ndim == 2:
            img = img[..., None]
        img = img[..., :3] if img.shape[-1] in (3, 4) else img[..., :1]
        half = img.shape[0] // 2
        if half == 0:
            return None
        return img[:half], img[half : 2 * half]
    if isinstance(ext.get("samples"), dict):
        from vqbench.results import decode_samples

        try:
            orig, recon = decode_samples(ext["samples"])
        except (TypeError, ValueError):
            return None

        def strip(images: Any) -> Any:
            return np.concatenate(list(images.transpose(0, 2, 3, 1)), axis=1).astype(np.float32) / 255.0

        return strip(orig), strip(recon)
    return None


def reconstruction_strips(frame: Any) -> list[tuple[str, dict[str, tuple]]]:
    """Per dataset, the decoded strips of each quantizer setting that stored reconstructions:
    (dataset, {setting name: (originals, reconstructions)}); datasets with none are left out."""
    has = frame["ext"].map(
        lambda e: isinstance(e.get("reconstructions_png"), str) or isinstance(e.get("samples"), dict)
    )
    rows = frame[frame["status"].eq("ok") & has]
    out = []
    for dataset, group in rows.groupby("dataset", sort=False):
        decoded: dict[str, tuple] = {}
        for quantizer, label, ext in zip(
            group["quantizer"], group["config_label"], group["ext"], strict=True
        ):
            name = f"{quantizer[:24]}\n{label[:28]}".strip()
            if name in decoded:
                continue
            got = strips(ext)
            if got is not None:
                decoded[name] = got
        if decoded:
            out.append((dataset, decoded))
    return out


def _size_label(size: float) -> str:
    k = int(size)
    return f"2^{k.bit_length() - 1}" if k > 0 and k & (k - 1) == 0 else str(k)


def curve_points(rows: Any) -> Any | None:
    """The points of training curves in ``train_steps`` rows' ``curve``: per quantizer, codebook
    size (``K``, and ``Kn`` to sort by), seed, dataset, step and held-out metric, its value (None
    when the rows hold no curve)."""
    points = []
    for quantizer, size, seed, dataset, ext in zip(
        rows["quantizer"], rows["codebook_size"], rows["seed"], rows["dataset"], rows["ext"], strict=True
    ):
        curve = ext.get("curve") or {}
        steps = curve.get("step") or []
        for key in CURVE_METRICS:
            for step, value in zip(steps, curve.get(key) or [], strict=False):
                if value is not None:
                    k = "no quantizer" if size != size or size is None else f"K = {_size_label(size)}"
                    points.append(
                        {
                            "quantizer": quantizer,
                            "K": k,
                            "seed": seed,
                            "dataset": dataset,
                            "step": step,
                            "metric": key,
                            "value": value,
                            "Kn": size if size == size else 0,
                        }
                    )
    if not points:
        return None
    import pandas as pd

    return pd.DataFrame(points)


__all__ = [
    "CURVE_METRICS",
    "curve_points",
    "not_drawn",
    "rate_distortion_points",
    "reconstruction_strips",
    "setting_labels",
    "size_of",
    "strips",
    "throughput_bars",
    "utilization_points",
]
