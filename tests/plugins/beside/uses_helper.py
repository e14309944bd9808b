"""A candidate file that imports a module beside it (``helper_levels.py``).

Loaded as ``tests/plugins/beside/uses_helper.py:Beside``; the suite's workers find the helper
because the file's folder joins their import path.
"""

from __future__ import annotations

from helper_levels import LEVELS  # a module beside this file, not installed

from vqbench.quantizers import create_quantizer


def Beside(dim: int | None = None, codebook_size: int | None = None):  # noqa: N802 - a factory
    """vqbench's FSQ at the helper's levels."""
    return create_quantizer("fsq", levels=list(LEVELS))
