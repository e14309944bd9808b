"""Test helpers: a toy quantizer plugin, an installed-looking distribution, an isolated registry."""

from __future__ import annotations

import contextlib
import sys
import textwrap
from pathlib import Path

TOY_DIST = "vqbench-toy-plugin"

# A complete protocol quantizer in one file: the sign of each channel, 2**dim codes.
TOY_QUANTIZER_SOURCE = textwrap.dedent(
    '''
    """A toy sign quantizer used by vqbench's tests."""
    import torch
    from vqbench.quantizers import Quantizer, QuantizerOutput


    class SignQuantizer(Quantizer):
        """Sign of each channel (toy plugin)."""

        def __init__(self, dim=None, codebook_size=None):
            super().__init__()
            self.dim = 3 if dim is None else dim
            self.codebook_size = 2**self.dim
            if codebook_size not in (None, self.codebook_size):
                raise ValueError(f"codebook_size must be 2**dim={self.codebook_size}, got {codebook_size}")
            self.register_buffer("powers", 2 ** torch.arange(self.dim))

        def forward(self, x):
            self.check_input(x)
            signs = torch.where(x > 0, 1.0, -1.0).to(x.dtype)
            codes = x + (signs - x).detach()
            indices = ((x > 0).long() * self.powers).sum(-1)
            return QuantizerOutput(codes, indices, None)

        def indices_to_codes(self, indices):
            bits = (indices[..., None] // self.powers) % 2
            return bits.float() * 2 - 1


    def not_a_quantizer(dim=None, codebook_size=None):
        return object()
    '''
)


def write_toy_module(path: Path) -> Path:
    """Write the toy quantizer module to ``path`` and return it."""
    path.write_text(TOY_QUANTIZER_SOURCE)
    return path


def make_site(root: Path, extra_entry_points: str = "") -> Path:
    """A folder that looks like site-packages holding the toy distribution.

    Entry points: ``toy-sign`` (works), ``toy-broken`` (its module raises on import), plus any
    ``extra_entry_points`` lines.
    """
    site = root / "site"
    package = site / "vqbench_toy_plugin"
    package.mkdir(parents=True)
    write_toy_module(package / "__init__.py")
    (site / "vqbench_toy_broken.py").write_text(
        'raise ImportError("vqbench_toy_broken needs a library that is not installed")\n'
    )
    dist_info = site / "vqbench_toy_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {TOY_DIST}\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[vqbench.quantizers]\n"
        "toy-sign = vqbench_toy_plugin:SignQuantizer\n"
        "toy-broken = vqbench_toy_broken:Anything\n" + extra_entry_points
    )
    return site


@contextlib.contextmanager
def isolated_registry(reload_entry_points: bool = False):
    """Snapshot the registry, optionally re-read entry points, and restore everything afterwards."""
    from vqbench.quantizers._registry import REGISTRY

    state = REGISTRY.snapshot()
    modules = set(sys.modules)
    if reload_entry_points:
        REGISTRY.reload_entry_points()
    try:
        yield REGISTRY
    finally:
        REGISTRY.restore(state)
        for name in set(sys.modules) - modules:
            if name.startswith(("vqbench_toy", "vqbench_plugin_")):
                del sys.modules[name]
