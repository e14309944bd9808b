"""The ``quantizer_bench`` fixture's object: one quantizer, one measurement, through pytest-benchmark."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn

from vqbench import _pytest_ops as ops
from vqbench._pytest_settings import Settings

WARMUP_CALLS = 3
USAGE_ROUNDS = 3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
    """On CUDA, wait for the device inside the timed call, so the timer sees the work, not the launch."""
    if device.type != "cuda":
        return fn

    def synced() -> Any:
        result = fn()
        torch.cuda.synchronize(device)
        return result

    return synced


class QuantizerBench:
    """Benchmark a quantizer through pytest-benchmark's ``benchmark`` fixture, once per test.

    ``quantizer_bench(name_or_module, "forward", size)`` times one operation; ``.usage(...)`` and
    ``.reconstruction(...)`` measure codebook usage and reconstruction quality and time the work
    they do. Figures go to ``benchmark.extra_info`` (and so to ``--benchmark-json`` and saved runs)
    and are returned as a dict. Without ``--benchmark`` (smoke mode) each runs once, at tiny sizes.
    """

    def __init__(self, benchmark: Any, settings: Settings) -> None:
        self.benchmark = benchmark
        self.settings = settings
        self._used_by: str | None = None
        if not settings.enabled:
            # Smoke mode: pytest-benchmark runs the function once and records nothing.
            benchmark.disabled = True

    @property
    def smoke(self) -> bool:
        """True when the session runs without ``--benchmark``."""
        return not self.settings.enabled

    # -- building ------------------------------------------------------------------------------------

    def _claim(self, what: str) -> None:
        if self._used_by is not None:
            raise RuntimeError(
                f"quantizer_bench measures one thing per test: already used for {self._used_by}, "
                f"now asked for {what}; split the test or parametrize it"
            )
        self._used_by = what

    @contextlib.contextmanager
    def _setup(self) -> Iterator[None]:
        """Route a failure before the timed call through the fixture, so pytest-benchmark marks the
        test as errored (kept out of tables and saved runs) instead of warning that it went unused."""
        try:
            yield
        except Exception as exc:
            error = exc

            def reraise() -> None:
                raise error

            self.benchmark.pedantic(reraise)

    def _device(self, device: str | torch.device) -> torch.device:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            pytest.skip("CUDA is not available")
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
        return dev

    def build(
        self, quantizer: str | nn.Module, device: torch.device, backend: str = "eager", **config: Any
    ) -> tuple[nn.Module, str, dict[str, Any]]:
        """The module to measure, its display name, and the config it was built with."""
        if isinstance(quantizer, nn.Module):
            if config:
                raise TypeError(
                    f"config {sorted(config)} only applies to a quantizer given by name, not an instance"
                )
            if backend not in ("eager", "compile"):
                raise ValueError(f"an instance can run as backend 'eager' or 'compile', got {backend!r}")
            module, name = quantizer, type(quantizer).__name__
        elif isinstance(quantizer, str):
            from vqbench.quantizers import create_quantizer

            suite = self.settings.suite_sizes
            if suite.codebook_size is not None:
                config.setdefault("codebook_size", suite.codebook_size)
            if suite.dim is not None:
                config.setdefault("dim", suite.dim)
            if backend not in ("eager", "compile"):
                config["backend"] = backend
            module, name = create_quantizer(quantizer, **config), quantizer
        else:
            raise TypeError(
                f"quantizer must be a registry name or an nn.Module, got {type(quantizer).__name__}"
            )
        module = module.to(device)
        if backend == "compile":
            module = torch.compile(module)
        return module, name, config

    def _base_info(self, q: nn.Module, name: str, device: torch.device, backend: str, config: dict) -> dict:
        info = {
            "quantizer": name,
            "backend": backend,
            "device": str(device),
            "dim": int(q.dim),
            "codebook_size": int(q.codebook_size),
            "num_codebooks": int(getattr(q, "num_codebooks", 1)),
            "bits_per_token": float(q.bits_per_token),
            "config": {k: v for k, v in config.items() if isinstance(v, (int, float, str, bool, type(None)))},
            "threads": torch.get_num_threads(),
            "mode": self.settings.mode,
        }
        return info

    def _group(self, kind: str, device: torch.device, label: str, backend: str, config: dict) -> str:
        parts = [kind, device.type, label]
        if config.get("codebook_size"):
            parts.append(f"K={config['codebook_size']}")
        if backend != "eager":
            parts.append(backend)
        return " ".join(parts)

    def _median(self) -> float | None:
        stats = getattr(self.benchmark, "stats", None)
        if not stats:
            return None
        return float(stats.stats.median)

    # -- throughput ----------------------------------------------------------------------------------

    def __call__(
        self,
        quantizer: str | nn.Module,
        operation: str = "forward",
        size: int | None = None,
        *,
        device: str | torch.device = "cpu",
        backend: str = "eager",
        group: str | None = None,
        seed: int = 0,
        **config: Any,
    ) -> dict[str, Any]:
        """Time ``operation`` (forward, train_step, encode, decode) on ``size`` vectors.

        Returns (and puts in extra_info) vectors_per_s and effective_gb_per_s, beside what was
        measured. ``size`` defaults to the suite's first size; smoke mode caps it to a tiny one.
        """
        ops.check_operation(operation)
        n = self._size(size)
        self._claim(f"{operation} of {quantizer!r}")
        dev = self._device(device)
        with self._setup():
            q, name, config = self.build(quantizer, dev, backend, **config)
            x = ops.gaussian_vectors(n, int(q.dim), seed=seed, device=dev)
            fn = _timed(ops.make_operation(q, operation, x), dev)
            info = self._base_info(q, name, dev, backend, config)
            info.update(operation=operation, vectors=n, bytes_moved=ops.bytes_moved(q, operation, x))
            self.benchmark.group = group or self._group(operation, dev, f"n={n}", backend, config)
            self.benchmark.extra_info.update(info)
            if self.settings.enabled:
                start = time.perf_counter()
                fn()
                info["first_call_s"] = time.perf_counter() - start  # includes compilation for "compile"
                for _ in range(WARMUP_CALLS - 1):
                    fn()
        self.benchmark(fn)
        median = self._median()
        if median:
            info["median_s"] = median
            info["vectors_per_s"] = n / median
            info["effective_gb_per_s"] = info["bytes_moved"] / median / 1e9
        self.benchmark.extra_info.update(info)
        return info

    def _size(self, size: int | None) -> int:
        sizes = self.settings.suite_sizes.sizes
        if size is None:
            return sizes[0]
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ValueError(f"size must be a positive number of vectors, got {size!r}")
        return min(size, sizes[0]) if self.smoke else size

    # -- usage ---------------------------------------------------------------------------------------

    def usage(
        self,
        quantizer: str | nn.Module,
        data: torch.Tensor | None = None,
        *,
        tokens: int | None = None,
        device: str | torch.device = "cpu",
        group: str | None = None,
        seed: int = 0,
        **config: Any,
    ) -> dict[str, Any]:
        """Codebook usage over a whole evaluation set (``data``, or seeded gaussian vectors).

        Times encoding the set; extra_info gets utilization, perplexity, perplexity_ratio,
        entropy_bits, dead_codes and tokens.
        """
        self._claim(f"usage of {quantizer!r}")
        dev = self._device(device)
        with self._setup():
            q, name, config = self.build(quantizer, dev, **config)
        if data is None:
            n = tokens or self.settings.suite_sizes.usage_tokens
            if self.smoke:
                n = min(n, self.settings.suite_sizes.usage_tokens)
            data = ops.gaussian_vectors(n, int(q.dim), seed=seed, device=dev)
        else:
            data = data.to(dev)
        info = self._base_info(q, name, dev, "eager", config)
        self.benchmark.group = group or self._group("usage", dev, f"n={data.shape[0]}", "eager", config)
        self.benchmark.extra_info.update(info)
        result: dict[str, torch.Tensor] = {}

        def encode_set() -> None:
            result["indices"] = ops.encode_all(q, data)
            _sync(dev)

        self.benchmark.pedantic(encode_set, rounds=USAGE_ROUNDS, warmup_rounds=1)
        info.update(ops.usage_figures(result["indices"], info["codebook_size"], info["num_codebooks"]))
        self.benchmark.extra_info.update(info)
        return info

    # -- reconstruction ------------------------------------------------------------------------------

    def reconstruction(
        self,
        quantizer: str | nn.Module,
        train: torch.Tensor | None = None,
        eval: torch.Tensor | None = None,
        *,
        steps: int | None = None,
        batch: int | None = None,
        device: str | torch.device = "cpu",
        group: str | None = None,
        seed: int = 0,
        **config: Any,
    ) -> dict[str, Any]:
        """Train a small MLP autoencoder with the quantizer as bottleneck; time the training.

        extra_info gets psnr (dB, per sample, averaged), mse, usage after training and bits_per_token.
        """
        self._claim(f"reconstruction of {quantizer!r}")
        dev = self._device(device)
        suite = self.settings.suite_sizes
        steps = suite.recon_steps if steps is None or self.smoke else steps
        batch = suite.recon_batch if batch is None or self.smoke else batch
        with self._setup():
            q, name, config = self.build(quantizer, dev, **config)
        if train is None or eval is None:
            n = max(4 * batch, 256)
            data = ops.gaussian_vectors(n + n // 4, suite.data_dim, seed=seed, device=dev)
            train, eval = data[:n], data[n:]
        train, eval = train.to(dev), eval.to(dev)
        info = self._base_info(q, name, dev, "eager", config)
        info.update(steps=steps, batch=batch, data_dim=int(train.shape[1]))
        self.benchmark.group = group or self._group("reconstruction", dev, f"steps={steps}", "eager", config)
        self.benchmark.extra_info.update(info)
        result: dict[str, float] = {}

        def train_once() -> None:
            result.update(ops.train_reconstruction(q, train, eval, steps=steps, batch=batch, seed=seed))
            _sync(dev)

        self.benchmark.pedantic(train_once, rounds=1)
        info.update(result)
        info["utilization"] = result["usage_utilization"]
        info["perplexity"] = result["usage_perplexity"]
        self.benchmark.extra_info.update(info)
        return info


__all__ = ["QuantizerBench"]
