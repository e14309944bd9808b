"""pytest plugin (entry point ``pytest11``): ``pytest --benchmark`` runs vqbench's benchmarks.

Options (beside pytest-benchmark's own ``--benchmark-*``):
  --benchmark                    measure at the suite's sizes through pytest-benchmark; without it,
                                 vqbench's benchmark tests run once each at tiny sizes (smoke mode)
  --benchmark-quantizers PATTERNS  comma-separated names or globs, e.g. ``'fsq*,vq'``
  --benchmark-suite NAME         quick (default), standard, full, or a profile ``.toml``

Fixtures: ``quantizer_bench`` (time a quantizer's operation, usage or reconstruction) and
``vqbench_settings``. The marker ``@pytest.mark.vqbench_quantizers(*patterns)`` parametrizes a
test's ``quantizer_name`` argument over quantizers (the default set when no pattern is given,
filtered by ``--benchmark-quantizers``) and its ``bench_size`` argument over the suite's sizes.

Importing this module is cheap: torch is imported only by the fixtures and by option checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from vqbench._pytest_settings import DEFAULT_SUITE, Settings, resolve_suite, select_quantizers, split_patterns

if TYPE_CHECKING:
    from vqbench._pytest_fixtures import QuantizerBench

_SETTINGS = pytest.StashKey[Settings]()
_SMOKE_RUNS = pytest.StashKey[list]()
MARKER = "vqbench_quantizers"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "vqbench", "vqbench: quantizer benchmarks (pytest-benchmark options are under 'benchmark')"
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
        help="Quantizers to benchmark: comma-separated registry names or globs (e.g. 'fsq*,vq'), or "
        "'path/file.py:Name' references. Default: the default set (see `vqbench list`).",
    )
    group.addoption(
        "--benchmark-suite",
        metavar="NAME",
        default=None,
        dest="vqbench_suite",
        help="Suite whose sizes the benchmarks use: quick, standard, full, or a .toml profile. "
        f"Default: {DEFAULT_SUITE!r}.",
    )


def _settings_from(config: pytest.Config) -> Settings:
    enabled = bool(config.getoption("vqbench_benchmark", False))
    suite = config.getoption("vqbench_suite", None) or DEFAULT_SUITE
    patterns = split_patterns(config.getoption("vqbench_quantizers", None))
    if enabled and not config.pluginmanager.hasplugin("benchmark"):
        raise ValueError(
            "--benchmark needs the pytest-benchmark plugin, which is not installed "
            "or was disabled (-p no:benchmark)"
        )
    sizes = resolve_suite(suite, enabled)
    if patterns is not None:
        select_quantizers((), patterns)  # an unknown pattern fails the session now
    return Settings(enabled=enabled, patterns=patterns, suite=suite, suite_sizes=sizes)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*patterns): parametrize quantizer_name over these quantizers (default set when empty; "
        "filtered by --benchmark-quantizers) and bench_size over the suite's sizes.",
    )
    try:
        config.stash[_SETTINGS] = _settings_from(config)
    except (ValueError, TypeError, KeyError, ImportError, FileNotFoundError) as exc:
        raise pytest.UsageError(f"vqbench: {exc}") from exc
    config.stash[_SMOKE_RUNS] = []


def _settings(config: pytest.Config) -> Settings:
    try:
        return config.stash[_SETTINGS]
    except KeyError:  # configured without this plugin's pytest_configure (should not happen)
        settings = config.stash[_SETTINGS] = _settings_from(config)
        return settings


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = _settings(config)
    if not settings.enabled and settings.patterns is None and config.getoption("vqbench_suite", None) is None:
        return None
    which = ",".join(settings.patterns) if settings.patterns else "default set"
    sizes = ", ".join(str(s) for s in settings.suite_sizes.sizes)
    suite = settings.suite_sizes.name
    return f"vqbench: {settings.mode} mode, suite {suite} (sizes {sizes}), quantizers: {which}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None:
        return
    settings = _settings(metafunc.config)
    if "quantizer_name" in metafunc.fixturenames:
        patterns = tuple(p for arg in marker.args for p in (split_patterns(arg) or ()))
        names = select_quantizers(patterns, settings.patterns)
        metafunc.parametrize("quantizer_name", names, ids=[n.rpartition(":")[2] or n for n in names])
    if "bench_size" in metafunc.fixturenames:
        sizes = list(settings.suite_sizes.sizes)
        metafunc.parametrize("bench_size", sizes, ids=[f"n={s}" for s in sizes])


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    runs = config.stash.get(_SMOKE_RUNS, [])
    if runs and not _settings(config).enabled:
        terminalreporter.write_line(
            f"vqbench: {len(runs)} benchmark test(s) ran in smoke mode (once each, tiny sizes); "
            "pass --benchmark to measure them"
        )


@pytest.fixture(scope="session")
def vqbench_settings(pytestconfig: pytest.Config) -> Settings:
    """The session's vqbench settings: mode, quantizer patterns, suite and its sizes."""
    return _settings(pytestconfig)


@pytest.fixture
def quantizer_bench(benchmark: Any, request: pytest.FixtureRequest) -> QuantizerBench:
    """Benchmark a quantizer (registry name or instance) through pytest-benchmark, once per test.

    ``quantizer_bench("fsq", "forward", 65536)`` times an operation (forward, train_step, encode,
    decode); ``quantizer_bench.usage("vq")`` and ``quantizer_bench.reconstruction("lfq")`` measure
    usage and reconstruction. Figures land in ``benchmark.extra_info`` and are returned.
    """
    from vqbench._pytest_fixtures import QuantizerBench

    settings = _settings(request.config)
    if not settings.enabled:
        request.config.stash[_SMOKE_RUNS].append(request.node.nodeid)
    return QuantizerBench(benchmark, settings)
