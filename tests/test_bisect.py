"""`vqbench bisect` over a small git repository whose 5th of 8 commits slows a plugin quantizer."""

from __future__ import annotations

import subprocess

import pytest

from vqbench.cli import main

QUANTIZER = '''
import torch
from vqbench.quantizers import QuantizerOutput


class Toy(torch.nn.Module):
    """Scalar rounding to 16 levels on 4 channels."""

    dim, codebook_size, num_codebooks, bits_per_token = 4, 16**4, 1, 16.0

    def __init__(self, **config):
        super().__init__()

    def _codes(self, x):
        return torch.round(torch.tanh(x) * 7.5)

    def forward(self, x):
        codes = REPEAT
        indices = ((codes + 7.5) * 16 ** torch.arange(4)).sum(-1).long()
        return QuantizerOutput(x + (codes - x).detach(), indices, None)

    def indices_to_codes(self, indices):
        digits = (indices[..., None] // 16 ** torch.arange(4)) % 16
        return digits.float() - 7.5
'''
FAST = "self._codes(x)"
SLOW = "[self._codes(x) for _ in range(3)][-1]"


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "toy-quantizer"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "dev@example.org")
    _git(repo, "config", "user.name", "dev")
    shas = []
    for i in range(1, 9):
        body = QUANTIZER.replace("REPEAT", SLOW if i >= 5 else FAST)
        (repo / "toy.py").write_text(body + f"\nVERSION = {i}\n")
        _git(repo, "add", "toy.py")
        _git(
            repo, "commit", "-q", "-m", f"change {i}" + (": compute the codes three times" if i == 5 else "")
        )
        shas.append(_git(repo, "rev-parse", "HEAD").strip())
    return repo, shas


def test_bisect_names_the_commit_that_slowed_the_quantizer(repo, capsys):
    path, shas = repo
    code = main(
        [
            "bisect",
            shas[0],
            shas[-1],
            "--repo",
            str(path),
            "--quantizer",
            "toy.py:Toy",
            "--figure",
            "forward.relative_time@16384",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"first bad commit: {shas[4]} change 5: compute the codes three times" in out
    assert _git(path, "worktree", "list").count("\n") == 1  # the checkouts are gone


def test_bisect_refuses_bad_input_before_work(repo, tmp_path, capsys):
    path, shas = repo
    assert main(["bisect", "HEAD~1", "HEAD", "--repo", str(tmp_path), "--quantizer", "toy.py:Toy"]) == 2
    assert "must be a git repository" in capsys.readouterr().err
    assert (
        main(["bisect", "HEAD~1", "HEAD", "--repo", str(path), "--quantizer", "x.py:X", "--figure", "psnr"])
        == 2
    )
    assert "OPERATION.relative_time@SIZE" in capsys.readouterr().err
    assert main(["bisect", "nope", "HEAD", "--repo", str(path), "--quantizer", "toy.py:Toy"]) == 2
    assert "rev-parse" in capsys.readouterr().err
