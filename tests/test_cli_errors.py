"""The ``vqbench`` command: a user's mistake exits 2 with one line, a bug exits 1 with its traceback."""

from __future__ import annotations

import pytest

import vqbench.reports._cli_results as results_cli
from vqbench.cli import main
from vqbench.errors import UserError


def test_a_bug_inside_a_command_exits_1_with_its_traceback(monkeypatch, tmp_path):
    def broken(args):
        raise RuntimeError("a bug in the command")

    monkeypatch.setattr(results_cli, "run", broken)
    with pytest.raises(RuntimeError, match="a bug in the command"):  # the interpreter prints it, exit 1
        main(["results", "--store", str(tmp_path / "s.sqlite")])


def test_a_user_error_exits_2_with_one_line_and_no_traceback(monkeypatch, tmp_path, capsys):
    def bad_input(args):
        raise UserError("--store: expected a store file, got a folder")

    monkeypatch.setattr(results_cli, "run", bad_input)
    assert main(["results", "--store", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err == "vqbench results: error: --store: expected a store file, got a folder\n"
    assert "Traceback" not in err


def test_the_command_line_of_a_bug_exits_1_and_shows_the_traceback(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, vqbench.reports._cli_results as r\n"
        "def boom(args): raise KeyError('internal')\n"
        "r.run = boom\n"
        "from vqbench.cli import main\n"
        "sys.exit(main(['results', '--store', sys.argv[1]]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s.sqlite")], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "KeyError: 'internal'" in proc.stderr
