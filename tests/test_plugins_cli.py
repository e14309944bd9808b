"""Registration reaches the workers: ``--plugins`` and ``[suite] plugins`` modules, a candidate
file that imports a module beside it, and ``module:Class`` from the current folder, all from a
command started the way the ``vqbench`` console script starts (the current folder not on the path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vqbench.results import ResultStore
from vqbench.suite.profiles import ProfileError, parse_profile

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).parent / "plugins"


def _tiny(tmp_path: Path, quantizers: list[str], suite_extra: str = "") -> Path:
    names = ", ".join(f'"{q}"' for q in quantizers)
    path = tmp_path / "tiny.toml"
    path.write_text(f"""
[suite]
name = "tiny"
quantizers = [{names}]
threads = 1
timeout = 120
{suite_extra}

[datasets.gaussian]
dim = 3
n_train = 256
n_eval = 256

[benchmarks.usage]
datasets = ["gaussian"]
train_steps = 2
batch = 32
""")
    return path


def _vqbench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``vqbench ARGS`` run from tests/plugins by a launcher script, as the console script runs:
    the script's own folder is on sys.path, the current folder is not."""
    launcher = tmp_path / "bin" / "vqbench_launcher.py"
    launcher.parent.mkdir(exist_ok=True)
    launcher.write_text(
        "import sys\nfrom vqbench.cli import main\n\nif __name__ == '__main__':\n    sys.exit(main())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, str(launcher), *args],
        cwd=PLUGINS,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_plugins_modules_beside_files_and_module_refs_reach_the_workers(tmp_path):
    store = tmp_path / "s.sqlite"
    names = ["test-registered", "preflight_plugins:Good", "beside/uses_helper.py:Beside"]
    proc = _vqbench(
        tmp_path,
        "run",
        "--suite",
        str(_tiny(tmp_path, names)),
        "--store",
        str(store),
        "--plugins",
        "registered_plugin",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with ResultStore(store, readonly=True) as st:
        run_id = st.resolve_run("latest")
        rows, info = st.rows(run_id), st.run_info(run_id)
    assert set(rows["status"]) == {"ok"}
    assert set(rows["quantizer"]) == set(names)
    workers = {json.loads(e)["worker"]["pid"] for e in rows["extra"]}
    assert os.getpid() not in workers  # measured in worker processes
    assert info["config"]["plugins"] == ["registered_plugin"]  # recorded with the run
    assert (
        str(PLUGINS) in info["config"]["import_path"]
        and str(PLUGINS / "beside") in info["config"]["import_path"]
    )


def test_profile_plugins_and_the_preflight_of_a_registered_quantizer(tmp_path):
    store = tmp_path / "s.sqlite"
    path = _tiny(tmp_path, ["test-registered-tuple"], 'plugins = ["registered_plugin"]')
    proc = _vqbench(tmp_path, "run", "--suite", str(path), "--store", str(store), "--no-progress")
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "'test-registered-tuple'" in proc.stderr and "plain tuple" in proc.stderr
    assert not store.exists()


def test_without_plugins_a_registered_name_is_unknown_and_the_error_says_how(tmp_path):
    proc = _vqbench(
        tmp_path,
        "run",
        "--suite",
        str(_tiny(tmp_path, ["test-registered"])),
        "--store",
        str(tmp_path / "s.sqlite"),
        "--no-progress",
    )
    assert proc.returncode == 2
    assert "unknown quantizer 'test-registered'" in proc.stderr and "--plugins" in proc.stderr


def test_check_with_plugins_and_a_module_reference(tmp_path):
    proc = _vqbench(
        tmp_path,
        "check",
        "test-registered",
        "preflight_plugins:Good",
        "--plugins",
        "registered_plugin",
        "--codebook-size",
        "256",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "test-registered (codebook_size=256) on cpu: ok" in proc.stdout
    assert "preflight_plugins:Good (codebook_size=256) on cpu: ok" in proc.stdout
    missing = _vqbench(tmp_path, "check", "test-registered", "--plugins", "no_such_plugin_xyz")
    assert (
        missing.returncode == 2
        and "plugin module 'no_such_plugin_xyz' could not be imported" in missing.stderr
    )


@pytest.mark.parametrize(
    ("value", "says"),
    [("my_plugin.py", "imported by module name"), ("a b", "expected a module name"), ("../x", "module name")],
)
def test_a_plugins_value_that_is_not_a_module_name(value, says, tmp_path, capsys):
    from vqbench.cli import main

    assert main(["run", "--plugins", value, "--store", str(tmp_path / "s.sqlite"), "--dry-run"]) == 2
    assert says in capsys.readouterr().err
    with pytest.raises(ProfileError, match="suite.plugins"):
        parse_profile({"suite": {"plugins": [value]}, "benchmarks": {"usage": {"datasets": ["gaussian"]}}})


def test_a_plugin_module_also_named_as_a_file_registers_once(monkeypatch):
    """The same file imported as ``--plugins registered_plugin`` and as ``registered_plugin.py:...``
    gives two module objects; their decorators register the same quantizer, not a duplicate."""
    from _plugin_helpers import isolated_registry

    from vqbench.quantizers import create_quantizer, get_quantizer_spec
    from vqbench.quantizers._plugins import import_plugins

    monkeypatch.delitem(sys.modules, "registered_plugin", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with isolated_registry():
        import_plugins(["registered_plugin"], [str(PLUGINS)])
        get_quantizer_spec(f"{PLUGINS}/registered_plugin.py:registered").load()  # runs the decorators again
        assert create_quantizer("test-registered", codebook_size=256).codebook_size == 240
    monkeypatch.delitem(sys.modules, "registered_plugin", raising=False)
