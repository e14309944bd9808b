"""Synthetic runs for the report tests: realistic figures, seeded noise, chosen faults."""

from __future__ import annotations

import base64
import io
import math
import random

import numpy as np

from vqbench.results import ResultStore, encode_samples

ENV = {
    "torch": "2.13.0+cpu",
    "cpu": "Synthetic CPU",
    "threads": 2,
    "python": "3.11.7",
    "git_sha": "0" * 40,
    "vqbench": "0.1.0",
    "cuda": None,
    "gpu": None,
}


def store_row(**kw) -> dict:
    """One minimal stored row (a usage utilization of fsq), with ``kw`` over its fields."""
    row = {
        "benchmark": "usage",
        "quantizer": "fsq",
        "metric": "utilization",
        "value": 0.5,
        "unit": "",
        "higher_is_better": True,
        "cell_id": "c0",
    }
    row.update(kw)
    return row


QUANTIZERS = ("fsq", "vq", "lfq", "residual-vq")
SPEED = {"fsq": 12e6, "vq": 3e6, "lfq": 5e6, "residual-vq": 1.5e6}
OPS = ("forward", "train", "encode", "decode")
SIZES = (256, 1024, 4096)
UTIL = {
    "fsq": (1.0, 1.0, 0.99),
    "vq": (0.9, 0.6, 0.2),
    "lfq": (0.95, 0.85, 0.7),
    "residual-vq": (0.9, 0.7, 0.4),
}


def _images(rng: np.random.Generator, noise: float) -> tuple[np.ndarray, np.ndarray]:
    base = np.random.default_rng(1234).random((4, 1, 8, 8)).astype(np.float32)
    return base, np.clip(base + rng.normal(0, noise, base.shape), 0, 1).astype(np.float32)


def _png_strip(orig: np.ndarray, recon: np.ndarray) -> dict:
    """``extra`` as the reconstruction engine writes it: a base64 PNG, originals on the top row."""
    from matplotlib.image import imsave

    top = np.concatenate(list(orig[:, 0]), axis=1)
    bottom = np.concatenate(list(recon[:, 0]), axis=1)
    buf = io.BytesIO()
    imsave(buf, np.concatenate([top, bottom], axis=0), cmap="gray", vmin=0, vmax=1, format="png")
    return {"reconstructions_png": base64.b64encode(buf.getvalue()).decode("ascii")}


def run_rows(
    seed: int = 0,
    noise: float = 0.03,
    slow: dict | None = None,
    util_drop: dict | None = None,
    errors: tuple[str, ...] = (),
    quantizers: tuple[str, ...] = QUANTIZERS,
    samples: bool | str = True,
    backends: tuple[str, ...] = ("eager", "compile"),
    train_s: float | None = None,
) -> list[dict]:
    """Rows of one synthetic run. ``slow``: quantizer -> slowdown factor on all its throughput;
    ``util_drop``: quantizer -> absolute utilization drop; ``errors``: quantizers whose usage cell fails."""
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    slow = slow or {}
    util_drop = util_drop or {}
    rows: list[dict] = []
    for q in quantizers:
        for backend in backends:
            for op_i, op in enumerate(OPS):
                true = SPEED[q] * (1.6 if backend == "compile" else 1.0) / (1 + op_i * 0.5) / slow.get(q, 1.0)
                value = true * math.exp(rnd.gauss(0, noise))
                rows.append(
                    {
                        "benchmark": "throughput",
                        "quantizer": q,
                        "config": {"codebook_size": 1024},
                        "backend": backend,
                        "device": "cpu",
                        "dataset": None,
                        "metric": f"{op}.vectors_per_s@65536",
                        "value": value,
                        "unit": "vectors/s",
                        "higher_is_better": True,
                        "spread": value * abs(rnd.gauss(0.03, 0.01)),
                        "n": 11,
                        "seed": 0,
                        "cell_id": f"t-{q}-{backend}",
                        "extra": {"operation": op, "size": 65536},
                    }
                )
        for size, util in zip(SIZES, UTIL[q], strict=True):
            cell = f"u-{q}-{size}"
            config = {"codebook_size": size}
            if q in errors:
                rows.append(
                    {
                        "benchmark": "usage",
                        "quantizer": q,
                        "config": config,
                        "dataset": "gaussian",
                        "metric": "utilization",
                        "value": None,
                        "unit": "",
                        "status": "error",
                        "message": "RuntimeError: CUDA out of memory <simulated>",
                        "cell_id": cell,
                    }
                )
                continue
            u = max(0.0, min(1.0, util - util_drop.get(q, 0.0) + rnd.gauss(0, 0.002)))
            figures = [
                ("utilization", u, "", True),
                ("perplexity", u * size * 0.9, "", True),
                ("dead_codes", round((1 - u) * size), "codes", False),
            ]
            if train_s is not None:  # the usage training's wall-clock time
                figures.append(("train_time", train_s * math.exp(rnd.gauss(0, noise)), "s", False))
            for metric, value, unit, hib in figures:
                rows.append(
                    {
                        "benchmark": "usage",
                        "quantizer": q,
                        "config": config,
                        "dataset": "gaussian",
                        "dataset_checksum": "abc",
                        "metric": metric,
                        "value": value,
                        "unit": unit,
                        "higher_is_better": hib,
                        "n": 40960,
                        "seed": 0,
                        "cell_id": cell,
                    }
                )
        for size in SIZES:
            cell = f"r-{q}-{size}"
            psnr = (
                18
                + 2.2 * math.log2(size) / 4
                - (1.5 if q == "vq" and size > 1000 else 0)
                + rnd.gauss(0, 0.05)
            )
            extra = {}
            if samples and size == 1024:
                orig, recon = _images(rng, 10 ** (-psnr / 20))
                extra = (
                    {"samples": encode_samples(orig, recon)} if samples == "dict" else _png_strip(orig, recon)
                )
            for metric, value, unit, hib, ext in (
                ("psnr", psnr, "dB", True, extra),
                ("mse", 10 ** (-psnr / 10), "", False, {}),
                ("bits_per_token", math.log2(size), "bits", None, {}),
                ("utilization", UTIL[q][SIZES.index(size)], "", True, {}),
                ("train_time", 12 * math.exp(rnd.gauss(0, noise)), "s", False, {}),
            ):
                rows.append(
                    {
                        "benchmark": "reconstruction",
                        "quantizer": q,
                        "config": {"codebook_size": size},
                        "dataset": "digits",
                        "metric": metric,
                        "value": value,
                        "unit": unit,
                        "higher_is_better": hib,
                        "seed": 0,
                        "cell_id": cell,
                        "extra": ext,
                    }
                )
    return rows


def add_run(store: ResultStore, suite: str = "full", env: dict | None = None, **kwargs) -> str:
    """Start, fill and finish one synthetic run; returns its id."""
    run = store.start_run(suite, env or ENV, {"argv": ["synthetic"]})
    store.write_rows(run_rows(**kwargs))
    store.finish_run(run)
    return run


def add_nights(
    store: ResultStore,
    nights: int = 60,
    machines: tuple[str, ...] = ("Synthetic CPU A", "Synthetic CPU B"),
    slow_from: int | None = None,
    upgrade_at: int | None = None,
    **kwargs,
) -> list[str]:
    """``nights`` nightly runs per machine, one a day from 2026-01-01: ``vq`` is 1.6x slower on the
    first machine from night ``slow_from`` on; vector-quantize-pytorch goes from 1.32.0 to 1.33.0
    at night ``upgrade_at`` on every machine. Returns the run ids."""
    import datetime as dt

    ids = []
    day0 = dt.datetime(2026, 1, 1, 2, tzinfo=dt.timezone.utc)
    for night in range(nights):
        for m, cpu in enumerate(machines):
            vqp = "1.33.0" if upgrade_at is not None and night >= upgrade_at else "1.32.0"
            env = {**ENV, "cpu": cpu, "vector_quantize_pytorch": vqp}
            slow = {"vq": 1.6} if m == 0 and slow_from is not None and night >= slow_from else None
            started = day0 + dt.timedelta(days=night, minutes=m)
            run = {
                "run_id": f"n{night:03d}-{m}",
                "suite": "full",
                "environment": env,
                "config": {},
                "started": started.isoformat(),
                "finished": (started + dt.timedelta(minutes=30)).isoformat(),
            }
            ids.append(store.add_run(run, run_rows(seed=night * 7 + m, slow=slow, samples=False, **kwargs)))
    return ids
