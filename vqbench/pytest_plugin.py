"""pytest plugin (entry point ``pytest11``): ``pytest --benchmark`` runs vqbench's benchmarks.

Options (beside pytest-benchmark's own ``--benchmark-*``):
  --benchmark                      measure at the suite's sizes through pytest-benchmark; without it,
                                   vqbench's benchmark tests run once each at tiny sizes (smoke mode)
  --benchmark-quantizers PATTERNS  comma-separated names or globs, e.g. ``'fsq*,vq'``
  --benchmark-suite NAME           quick (default), standard, full, or a profile ``.toml``

Fixtures: ``quantizer_bench`` (time a quantizer's operation, usage or reconstruction) and
``vqbench_settings``. The marker ``@pytest.mark.vqbench_quantizers(*patterns)`` parametrizes a
test's ``quantizer_name`` argument over quantizers (the suite's default set when no pattern is
given; filtered by ``--benchmark-quantizers``), and its ``bench_size``, ``bench_operation`` and
``bench_device`` arguments over the suite's throughput sizes, operations and the devices that
exist here.

Importing this module is cheap: torch is imported by the fixtures and by option checks only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from vqbench._pytest_settings import (
    DEFAULT_SUITE,
    PytestSettings,
    check_suite,
    select_quantizers,
    split_patterns,
)

if TYPE_CHECKING:
    from vqbench._pytest_fixtures import QuantizerBench

_SETTINGS = pytest.StashKey[PytestSettings]()
_SMOKE_RUNS = pytest.StashKey[list]()
MARKER = "vqbench_quantizers"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "vqbench", "vqbench: quantizer benchmarks (pytest-benchmark's options: 'benchmark')"
    )
    group.addoption(
        "--benchmark",
        action="store_true",
        default=False,
        dest="vqbench_benchmark",
        help="Run vqbench's benchmark tests at the suite's sizes through pytest-benchmark. Without it they "
        "run once each at tiny sizes (smoke mode).",
    )
    group.addoption(
        "--benchmark-quantizers",
        metavar="PATTERNS",
        default=None,
        dest="vqbench_quantizers",
        help="Quantizers to benchmark: comma-separated registry names or globs (e.g. 'fsq*,vq'), "
        "'default', or 'path/file.py:Name' references. Default: the suite's (the default set).",
    )
    group.addoption(
        "--benchmark-suite",
        metavar="NAME",
        default=None,
        dest="vqbench_suite",
        help="Suite whose sizes and configs the benchmarks use: quick, standard, full, or a .toml "
        f"profile. Default: {DEFAULT_SUITE!r}.",
    )


def _settings_from(config: pytest.Config) -> PytestSettings:
    enabled = bool(config.getoption("vqbench_benchmark", False))
    given = config.getoption("vqbench_suite", None)
    suite = DEFAULT_SUITE if given is None else check_suite(given)  # the default is read on first use
    patterns = split_patterns(config.getoption("vqbench_quantizers", None))
    if enabled and not config.pluginmanager.hasplugin("benchmark"):
        raise ValueError(
            "--benchmark needs the pytest-benchmark plugin, which is not installed "
            "or was disabled (-p no:benchmark)"
        )
    settings = PytestSettings(enabled=enabled, patterns=patterns, suite=suite)
    if patterns is not None:
        select_quantizers((), settings)  # an unknown pattern fails the session now
    return settings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*patterns): parametrize quantizer_name over these quantizers (the suite's when none; "
        "filtered by --benchmark-quantizers); bench_size, bench_operation, bench_device over the suite's "
        "sizes, operations and devices.",
    )
    try:
        config.stash[_SETTINGS] = _settings_from(config)
    except (ValueError, TypeError, KeyError, ImportError, FileNotFoundError) as exc:
        raise pytest.UsageError(f"vqbench: {exc}") from exc
    config.stash[_SMOKE_RUNS] = []


def _settings(config: pytest.Config) -> PytestSettings:
    if _SETTINGS not in config.stash:  # configured without this plugin's pytest_configure
        config.stash[_SETTINGS] = _settings_from(config)
    return config.stash[_SETTINGS]


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = _settings(config)
    if not settings.enabled and settings.patterns is None and config.getoption("vqbench_suite", None) is None:
        return None
    which = ",".join(settings.patterns) if settings.patterns else "the suite's"
    return f"vqbench: {settings.mode} mode, suite {settings.suite}, quantizers: {which}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None:
        return
    settings = _settings(metafunc.config)
    if "quantizer_name" in metafunc.fixturenames:
        patterns = tuple(p for arg in marker.args for p in (split_patterns(arg) or ()))
        names = select_quantizers(patterns, settings)
        metafunc.parametrize("quantizer_name", names, ids=[n.rpartition(":")[2] or n for n in names])
    if "bench_size" in metafunc.fixturenames:
        sizes = list(settings.sizes)
        metafunc.parametrize("bench_size", sizes, ids=[f"n={s}" for s in sizes])
    if "bench_operation" in metafunc.fixturenames:
        metafunc.parametrize("bench_operation", list(settings.suite_info.operations))
    if "bench_device" in metafunc.fixturenames:
        metafunc.parametrize("bench_device", settings.devices())


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    runs = config.stash.get(_SMOKE_RUNS, [])
    if runs and not _settings(config).enabled:
        terminalreporter.write_line(
            f"vqbench: {len(runs)} benchmark test(s) ran in smoke mode (once each, tiny sizes); "
            "pass --benchmark to measure them"
        )


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Record vqbench's environment fingerprint, so imported runs share the suite's history."""
    from vqbench.results import environment_fingerprint

    machine_info["vqbench_environment"] = environment_fingerprint()


@pytest.fixture(scope="session")
def vqbench_settings(pytestconfig: pytest.Config) -> PytestSettings:
    """The session's vqbench settings: mode, quantizer patterns, suite (sizes, configs)."""
    return _settings(pytestconfig)


@pytest.fixture
def quantizer_bench(benchmark: Any, request: pytest.FixtureRequest) -> QuantizerBench:
    """Benchmark a quantizer through pytest-benchmark, once per test.

    ``quantizer_bench("fsq", "forward", 65536)`` times an operation (forward, train, encode,
    decode); ``quantizer_bench.usage("vq")`` and ``quantizer_bench.reconstruction("lfq")`` run the
    suite's usage and reconstruction benchmarks. Figures land in ``benchmark.extra_info`` and are
    returned as a dict.
    """
    from vqbench._pytest_fixtures import QuantizerBench

    settings = _settings(request.config)
    if not settings.enabled:
        request.config.stash[_SMOKE_RUNS].append(request.node.nodeid)
    return QuantizerBench(benchmark, settings)
