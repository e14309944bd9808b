"""`vqbench datasets`."""

from __future__ import annotations

import numpy as np
import pytest

from vqbench.cli import main
from vqbench.datasets._cli import parse_options


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")


def test_lists_every_dataset(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("VQBENCH_FASHION_MNIST", str(tmp_path / "no-fashion"))
    monkeypatch.setenv("VQBENCH_SPEECH", str(tmp_path / "no-speech"))
    monkeypatch.delenv("VQBENCH_LATENTS", raising=False)
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for name in ("gaussian", "laplace", "digits", "skimage-gray", "skimage-rgb"):
        assert " yes" in lines[name]
    assert "16384/8192" in lines["gaussian"] and "16" in lines["gaussian"].split()
    assert "1438/359" in lines["digits"] and "1x8x8" in lines["digits"] and "scikit-learn" in lines["digits"]
    assert "3x16x16" in lines["skimage-rgb"]
    for name in ("fashion-mnist", "speech", "latents"):
        assert " no [" in lines[name]
    # the footnotes say how to get what is missing
    assert "apt-get install dataset-fashion-mnist" in out
    assert "apt-get install asterisk-core-sounds-en-wav" in out
    assert "VQBENCH_LATENTS" in out


def test_patterns_options_and_a_latents_path(capsys, tmp_path):
    np.save(tmp_path / "z.npy", np.ones((10, 5), np.float32))
    assert main(["datasets", "gauss*", str(tmp_path / "z.npy"), "-o", "dim=4", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip()]
    names = [r[0] for r in rows]
    assert "gaussian" in names and "gaussian-mixture" in names and "uniform" not in names
    gaussian = rows[names.index("gaussian")]
    assert gaussian[2:4] == ["16384/8192", "4"]
    latents = rows[names.index(str(tmp_path / "z.npy"))]
    assert latents[1:4] == ["vectors", "8/2", "5"]


def test_errors_exit_2(capsys):
    assert main(["datasets", "gausian"]) == 2
    assert "did you mean 'gaussian'" in capsys.readouterr().err
    assert main(["datasets", "digits", "-o", "dim=4"]) == 2
    assert "no selected dataset takes option(s) dim" in capsys.readouterr().err
    assert main(["datasets", "nothing*"]) == 2
    assert "no dataset matches 'nothing*'" in capsys.readouterr().err
    assert main(["datasets", "-o", "novalue"]) == 2
    assert "--option expects KEY=VALUE, got 'novalue'" in capsys.readouterr().err


def test_checksums_column(capsys):
    from vqbench.datasets import load_dataset

    assert main(["datasets", "uniform", "latents", "--checksums", "-o", "dim=3"]) == 0
    out = capsys.readouterr().out
    assert load_dataset("uniform", dim=3).checksum[:16] in out


def test_a_bad_option_value_is_shown_not_raised(capsys):
    assert main(["datasets", "digits", "-o", "eval_fraction=2"]) == 0
    out = capsys.readouterr().out
    assert "error [1]" in out and "eval_fraction must be a number strictly between 0 and 1" in out


def test_parse_options():
    assert parse_options(["dim=32", "path=/x/y", "rho=0.5", "images=camera,moon", "stride=None"]) == {
        "dim": 32,
        "path": "/x/y",
        "rho": 0.5,
        "images": "camera,moon",
        "stride": None,
    }
