"""The ``quantizer_bench`` fixture's object: one quantizer, one measurement, through pytest-benchmark."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn

from vqbench._pytest_settings import SMOKE_TOKENS, BenchSpec, PytestSettings
from vqbench.quantizers._registry import BASE_BACKENDS

WARMUP_CALLS = 3


def _timed(fn: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
    """On CUDA, wait for the device inside the timed call, so the timer sees the work, not the launch."""
    if device.type != "cuda":
        return fn

    def synced() -> Any:
        result = fn()
        torch.cuda.synchronize(device)
        return result

    return synced


@functools.lru_cache(maxsize=8)
def _load_dataset(name: str, seed: int, options: tuple[tuple[str, Any], ...]) -> Any:
    """Datasets are fixed by name, seed and options: load each once per process."""
    from vqbench.datasets import load_dataset

    return load_dataset(name, seed=seed, **dict(options))


def _plain(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool, type(None)))


class QuantizerBench:
    """Benchmark a quantizer through pytest-benchmark's ``benchmark`` fixture, once per test.

    ``quantizer_bench(name_or_module, "forward", size)`` times one operation (forward, train,
    encode, decode); ``.usage(name)`` and ``.reconstruction(name)`` run the suite's usage and
    reconstruction benchmarks and time them. Figures go to ``benchmark.extra_info`` (and so to
    ``--benchmark-json`` and saved runs) and are returned as a dict. Without ``--benchmark``
    (smoke mode) each runs once, at tiny sizes. A quantizer given by name gets the suite's config
    for it (its ``[quantizers.*]`` table and codebook size); keyword config overrides it.
    """

    def __init__(self, benchmark: Any, settings: PytestSettings) -> None:
        self.benchmark = benchmark
        self.settings = settings
        self._used_by: str | None = None
        threads = settings.suite_info.threads
        if threads is not None:  # the suite's thread count, as `vqbench run` uses it
            torch.set_num_threads(threads)
        if not settings.enabled:
            benchmark.disabled = True  # smoke mode: run once, record nothing

    @property
    def smoke(self) -> bool:
        """True when the session runs without ``--benchmark``."""
        return not self.settings.enabled

    # -- shared --------------------------------------------------------------------------------------

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
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
        if dev.type == "cuda" and not torch.cuda.is_available():
            pytest.skip("CUDA is not available")
        return dev

    def config(self, name: str, **config: Any) -> dict[str, Any]:
        """The config a quantizer given by name is built with: the suite's, then ``config``."""
        return {**self.settings.suite_info.config_for(name), **config}

    def build(
        self, quantizer: str | nn.Module, device: torch.device, backend: str = "eager", **config: Any
    ) -> tuple[nn.Module, nn.Module, str, dict[str, Any]]:
        """``(callable, module, display name, config)``: the callable is compiled for "compile"."""
        if isinstance(quantizer, nn.Module):
            if config:
                raise TypeError(
                    f"config {sorted(config)} applies to a quantizer given by name, not an instance"
                )
            if backend not in BASE_BACKENDS:
                raise ValueError(f"an instance runs as backend 'eager' or 'compile', got {backend!r}")
            module, name = quantizer.to(device), type(quantizer).__name__
            call = torch.compile(module) if backend == "compile" else module
            return call, module, name, {}
        if not isinstance(quantizer, str):
            raise TypeError(
                f"quantizer must be a registry name or an nn.Module, got {type(quantizer).__name__}"
            )
        from vqbench.suite._common import build_quantizer
        from vqbench.suite.cells import Cell

        config = self.config(quantizer, **config)
        cell = Cell(
            suite=self.settings.suite,
            benchmark="throughput",
            quantizer=quantizer,
            config=config,
            backend=backend,
            device=str(device),
        )
        call, module = build_quantizer(cell)
        return call, module, quantizer, config

    def _info(self, q: nn.Module, name: str, device: torch.device, backend: str, config: dict) -> dict:
        return {
            "quantizer": name,
            "backend": backend,
            "device": str(device),
            "dim": int(q.dim),
            "codebook_size": int(q.codebook_size),
            "num_codebooks": int(getattr(q, "num_codebooks", 1)),
            "bits_per_token": float(q.bits_per_token),
            "config": {k: v for k, v in config.items() if _plain(v)},
            "threads": torch.get_num_threads(),
            "suite_threads": self.settings.suite_info.threads,
            "suite": self.settings.suite,
            "mode": self.settings.mode,
        }

    def _group(self, kind: str, device: torch.device, label: str, backend: str, config: dict) -> str:
        parts = [kind, device.type, label]
        if config.get("codebook_size"):
            parts.append(f"K={config['codebook_size']}")
        if backend != "eager":
            parts.append(backend)
        return " ".join(parts)

    def _median(self) -> float | None:
        stats = getattr(self.benchmark, "stats", None)
        return float(stats.stats.median) if stats else None

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
        """Time ``operation`` (forward, train, encode, decode) on ``size`` vectors.

        Returns (and puts in extra_info) vectors_per_s and effective_gbps beside what was
        measured. ``size`` defaults to the suite's first size; smoke mode makes it tiny.
        """
        from vqbench.suite import throughput, timing
        from vqbench.suite._common import drop_finite_check

        throughput.check_operation(operation)
        n = self._size(size)
        self._claim(f"{operation} of {quantizer!r}")
        dev = self._device(device)
        with self._setup():
            call, q, name, config = self.build(quantizer, dev, backend, **config)
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            x = throughput.gaussian_input(n, int(q.dim), generator=gen, device=dev)
            ops = throughput.Operations(call, q, x, compiled=backend == "compile")
            drop_finite_check(q)  # checked on the first call; timed calls stay unchecked
            fn = _timed(ops.fn(operation), dev)
            info = self._info(q, name, dev, backend, config)
            info.update(operation=operation, vectors=n, bytes_moved=sum(ops.bytes_moved(operation).values()))
            self.benchmark.group = group or self._group(operation, dev, f"n={n}", backend, config)
            self.benchmark.extra_info.update(info)
            if self.settings.enabled:
                info["first_call_s"] = timing.time_first_call(fn, dev)  # with compilation for "compile"
                for _ in range(WARMUP_CALLS - 1):
                    fn()
        self.benchmark(fn)
        median = self._median()
        if median:
            info["median_s"] = median
            info["vectors_per_s"] = n / median
            info["effective_gbps"] = info["bytes_moved"] / median / 1e9
        self.benchmark.extra_info.update(info)
        return info

    def _size(self, size: int | None) -> int:
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
            raise ValueError(f"size must be a positive number of vectors, got {size!r}")
        if self.smoke:
            return min(size or self.settings.sizes[0], self.settings.sizes[0])
        return size or self.settings.sizes[0]

    # -- usage and reconstruction through the suite's engines ----------------------------------------

    def _engine_run(
        self,
        kind: str,
        quantizer: str | nn.Module,
        dataset: str | None,
        device: str | torch.device,
        group: str | None,
        seed: int,
        params: dict[str, Any] | None,
        config: dict[str, Any],
    ) -> dict[str, Any]:
        self._claim(f"{kind} of {quantizer!r}")
        dev = self._device(device)
        if not isinstance(quantizer, str):
            raise TypeError(
                f"quantizer_bench.{kind}() runs the suite's {kind} engine, which builds the quantizer "
                f"from a registry name or 'module:Name' reference; got {type(quantizer).__name__}"
            )
        with self._setup():
            engine, cell, data = self._engine_cell(kind, quantizer, dataset, dev, seed, params or {}, config)
            info = {
                "quantizer": quantizer,
                "device": str(dev),
                "dataset": cell.dataset,
                "config": {k: v for k, v in cell.config.items() if _plain(v)},
                "params": {k: v for k, v in cell.params.items() if _plain(v)},
                "threads": torch.get_num_threads(),
                "suite": self.settings.suite,
                "mode": self.settings.mode,
            }
            label = f"dataset={cell.dataset}"
            self.benchmark.group = group or self._group(kind, dev, label, "eager", cell.config)
            self.benchmark.extra_info.update(info)
        rows: list[dict] = []

        def run_engine() -> None:
            rows[:] = engine.measure(cell, data)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)

        self.benchmark.pedantic(run_engine, rounds=1)
        figures = {r["metric"]: r["value"] for r in rows}
        info.update(figures)
        info["units"] = {r["metric"]: r["unit"] for r in rows}
        self.benchmark.extra_info.update(info)
        return info

    def _engine_cell(
        self,
        kind: str,
        name: str,
        dataset: str | None,
        dev: torch.device,
        seed: int,
        params: dict[str, Any],
        config: dict[str, Any],
    ) -> tuple[Any, Any, Any]:

        from vqbench.datasets import DatasetUnavailableError, make_dataset
        from vqbench.engines import get_engine
        from vqbench.suite.cells import Cell

        engine = get_engine(kind).load()
        spec: BenchSpec = getattr(self.settings.suite_info, kind)
        dataset = dataset or spec.dataset or "gaussian"
        options = dict(spec.dataset_options) if dataset == spec.dataset else {}
        merged = self.settings.engine_params(spec, getattr(engine, "PARAMS", {}))
        merged.update(params)
        cell = Cell(
            suite=self.settings.suite,
            benchmark=kind,
            quantizer=name,
            config=self.config(name, **config),
            dataset=dataset,
            dataset_options=options,
            device=str(dev),
            params=merged,
            seed=seed,
        )
        try:  # loaded here, so that the timed call does not include reading the data
            key = tuple(sorted(options.items()))
            try:
                hash(key)
            except TypeError:  # list-valued options: not cached
                data = _load_dataset.__wrapped__(dataset, seed, key)
            else:
                data = _load_dataset(dataset, seed, key)
        except DatasetUnavailableError as exc:
            pytest.skip(f"dataset {dataset!r} is not available here: {exc}")
        if self.smoke:  # cut to a few hundred samples
            data = make_dataset(
                data.name,
                data.kind,
                data.train[:SMOKE_TOKENS],
                data.eval[:SMOKE_TOKENS],
                dict(data.meta, smoke=True),
            )
        return engine, cell, data

    def usage(
        self,
        quantizer: str,
        dataset: str | None = None,
        *,
        device: str | torch.device = "cpu",
        group: str | None = None,
        seed: int = 0,
        params: dict[str, Any] | None = None,
        **config: Any,
    ) -> dict[str, Any]:
        """Run the suite's usage benchmark (``vqbench.suite.usage``) for ``quantizer``; time it.

        extra_info gets every figure of the engine: utilization, perplexity, perplexity_ratio,
        entropy_bits, dead_codes, tokens, ... ``params`` override the suite's engine parameters.
        """
        return self._engine_run("usage", quantizer, dataset, device, group, seed, params, config)

    def reconstruction(
        self,
        quantizer: str,
        dataset: str | None = None,
        *,
        device: str | torch.device = "cpu",
        group: str | None = None,
        seed: int = 0,
        params: dict[str, Any] | None = None,
        **config: Any,
    ) -> dict[str, Any]:
        """Run the suite's reconstruction benchmark (``vqbench.suite.reconstruction``); time it.

        extra_info gets every figure of the engine (PSNR, MSE, usage after training, bits per token).
        """
        return self._engine_run("reconstruction", quantizer, dataset, device, group, seed, params, config)


__all__ = ["QuantizerBench"]
