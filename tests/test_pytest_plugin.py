"""The pytest plugin, run through pytester: options, smoke mode, --benchmark, saved runs, bad input.

Toy quantizers live in a module of each pytester folder and are named as ``toys:Name``
references, so that nothing is added to this process's registry. Runs that import torch go to a
subprocess: an in-process run would drop torch's lazily imported modules afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

TOYS = '''
import torch
from vqbench.quantizers import Quantizer, QuantizerOutput

CALLS = []


class Toy(Quantizer):
    """Rounds tanh(x) to 4 levels per channel."""

    def __init__(self, dim=None, codebook_size=None, scale=1.0):
        super().__init__()
        self.dim, self.levels, self.scale = dim or 4, 4, scale
        self.codebook_size = self.levels**self.dim

    def forward(self, x):
        CALLS.append(tuple(x.shape))
        z = torch.tanh(x * self.scale)
        q = torch.round((z + 1) / 2 * (self.levels - 1))
        codes = z + (q / (self.levels - 1) * 2 - 1 - z).detach()
        base = self.levels ** torch.arange(self.dim, device=x.device)
        return QuantizerOutput(codes, (q.long() * base).sum(-1), None)

    def indices_to_codes(self, indices):
        base = self.levels ** torch.arange(self.dim, device=indices.device)
        q = (indices.unsqueeze(-1) // base) % self.levels
        return q.float() / (self.levels - 1) * 2 - 1


class Toy2(Toy):
    def __init__(self, **kw):
        super().__init__(scale=2.0, **kw)


class Broken(Toy):
    def forward(self, x):
        raise RuntimeError("this quantizer is broken")
'''

THROUGHPUT = """
import pytest
import toys

pytestmark = pytest.mark.vqbench_quantizers("toys:Toy", "toys:Toy2", "toys:Broken")


@pytest.mark.parametrize("operation", ["forward", "decode"])
def test_throughput(quantizer_bench, quantizer_name, operation, bench_size):
    toys.CALLS.clear()
    info = quantizer_bench(quantizer_name, operation, bench_size)
    sizes = {shape[0] * shape[1] for shape in toys.CALLS}
    mode, calls = quantizer_bench.settings.mode, len(toys.CALLS)
    print(f"\\nMODE={mode} OP={operation} CALLS={calls} MAX={max(sizes)} N={info['vectors']}")
"""

FAST = [
    "-p",
    "no:cacheprovider",
    "--benchmark-max-time=0.005",
    "--benchmark-min-rounds=2",
    "--benchmark-warmup=off",
]


TWICE = """
import toys


def test_twice(quantizer_bench):
    quantizer_bench(toys.Toy(), "forward")
    quantizer_bench(toys.Toy(), "encode")
"""


@pytest.fixture
def toy_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(toys=TOYS, test_toy_throughput=THROUGHPUT)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*args, *FAST, timeout=300)


def _lines(result: pytest.RunResult, prefix: str) -> list[str]:
    return [line.strip() for line in result.outlines if line.strip().startswith(prefix)]


def test_help_lists_the_options_beside_pytest_benchmarks(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    for option in ("--benchmark ", "--benchmark-quantizers=PATTERNS", "--benchmark-suite=NAME"):
        assert option in text
    for theirs in (
        "--benchmark-autosave",
        "--benchmark-compare=",
        "--benchmark-json=PATH",
        "--benchmark-group-by",
    ):
        assert theirs in text  # pytest-benchmark's options are still there


def test_plugin_import_does_not_import_torch() -> None:
    code = "import sys, vqbench.pytest_plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_smoke_mode_runs_once_at_a_tiny_size_and_an_error_fails_only_its_test(toy_project) -> None:
    toy_project.makepyfile(test_twice=TWICE)
    result = run(toy_project, "-s")
    result.assert_outcomes(passed=4, failed=3)
    result.stdout.fnmatch_lines(["*quantizer_bench measures one thing per test*"])
    result.stdout.fnmatch_lines(["E * RuntimeError: this quantizer is broken"])
    failed = _lines(result, "FAILED")
    assert len(failed) == 3 and sum("[Broken-" in line for line in failed) == 2
    lines = _lines(result, "MODE=")
    assert len(lines) == 4
    for line in lines:
        fields = dict(part.split("=") for part in line.split())
        assert fields["MODE"] == "smoke"
        assert int(fields["MAX"]) <= 64 and int(fields["N"]) <= 64
        assert int(fields["CALLS"]) <= 2  # one call that gives the shapes, then the measured one
    assert "smoke mode" in result.stdout.str()
    assert "benchmark '" not in result.stdout.str()  # no pytest-benchmark table


def test_benchmark_prints_the_table_saves_and_compares(toy_project) -> None:
    json_path = toy_project.path / "out.json"
    result = run(toy_project, "-s", "--benchmark", "--benchmark-autosave", f"--benchmark-json={json_path}")
    result.assert_outcomes(passed=4, failed=2)
    # one group per operation and size, the quantizers side by side in it
    result.stdout.fnmatch_lines(
        ["*benchmark 'decode cpu n=* K=*': 2 tests*", "*benchmark 'forward cpu n=* K=*': 2 tests*"]
    )
    for line in _lines(result, "MODE="):
        fields = dict(part.split("=") for part in line.split())
        assert fields["MODE"] == "benchmark" and int(fields["N"]) > 64
        if fields["OP"] == "forward":  # shapes, warm-up, calibration and rounds
            assert int(fields["CALLS"]) > 2
    data = json.loads(json_path.read_text())
    names = {b["name"] for b in data["benchmarks"]}
    assert len(names) == 4 and not any("Broken" in n for n in names)  # errored tests are left out
    assert len({b["group"] for b in data["benchmarks"]}) == 2
    for bench in data["benchmarks"]:
        extra = bench["extra_info"]
        assert extra["vectors_per_s"] > 0 and extra["effective_gbps"] > 0
        assert extra["mode"] == "benchmark" and extra["operation"] in ("forward", "decode")
    assert len(list((toy_project.path / ".benchmarks").rglob("0001_*.json"))) == 1

    again = ["--benchmark", "--benchmark-quantizers", "toys:Toy", "-k", "forward"]
    second = run(toy_project, "--benchmark-compare", "--benchmark-compare-fail=median:1000000%", *again)
    second.assert_outcomes(passed=1)
    second.stderr.fnmatch_lines(["*Comparing against benchmarks from*0001_*"])
    rows = _lines(second, "test_throughput[Toy-")  # the run now beside the saved one, in either order
    assert len(rows) == 2 and any("(NOW)" in r for r in rows) and any("(0001_" in r for r in rows)


def test_histogram(toy_project) -> None:
    # found, not imported: importing pygal here would change this process's import machinery
    if importlib.util.find_spec("pygal") is None or importlib.util.find_spec("pygaljs") is None:
        pytest.skip("--benchmark-histogram needs pytest-benchmark[histogram] (pygal, pygaljs)")
    args = ["--benchmark", "--benchmark-quantizers", "toys:Toy,toys:Toy2", "-k", "forward"]
    result = run(toy_project, "--benchmark-histogram=hist/toy", *args)
    result.assert_outcomes(passed=2)
    svgs = list((toy_project.path / "hist").glob("toy*.svg"))
    assert len(svgs) == 1 and "<svg" in svgs[0].read_text()


def test_unknown_quantizer_pattern_fails_at_start(toy_project) -> None:
    result = run(toy_project, "--benchmark-quantizers", "fqs")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*vqbench: --benchmark-quantizers: pattern 'fqs' matches no registered quantizer*"]
    )
    assert "did you mean" in result.stderr.str() and "'fsq'" in result.stderr.str()


def test_unknown_suite_fails_at_start(toy_project) -> None:
    result = toy_project.runpytest("--benchmark-suite", "quik", *FAST)  # no torch: in-process
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*vqbench:*unknown suite 'quik'*quick*"])


def test_quantizer_option_filters_a_tests_own_list(toy_project) -> None:
    result = run(toy_project, "--benchmark-quantizers", "toys:Toy2", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    ids = [line for line in result.outlines if "::test_throughput[" in line]
    assert ids and all("Toy2" in line for line in ids)


def test_the_pytest_path_runs_with_the_suites_threads_and_records_them():
    """The quick profile sets threads = 1; the fixture sets torch to it and records both."""
    import torch

    from vqbench._pytest_fixtures import QuantizerBench
    from vqbench._pytest_settings import PytestSettings

    class FakeBenchmark:
        disabled = False
        extra_info: dict = {}

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        settings = PytestSettings(enabled=False, patterns=None, suite="quick")
        assert settings.suite_info.threads == 1
        bench = QuantizerBench(FakeBenchmark(), settings)
        assert torch.get_num_threads() == 1
        call, q, name, config = bench.build("fsq", torch.device("cpu"), "eager")
        info = bench._info(q, name, torch.device("cpu"), "eager", config)
        assert info["threads"] == 1 and info["suite_threads"] == 1
    finally:
        torch.set_num_threads(before)
