"""FSQ operating points: the levels that the FSQ paper recommends per codebook size."""

from __future__ import annotations

import math

# Table 1 of arXiv 2309.15505.
RECOMMENDED_LEVELS: dict[int, tuple[int, ...]] = {
    2**8: (8, 6, 5),
    2**10: (8, 5, 5, 5),
    2**12: (7, 5, 5, 5, 5),
    2**14: (8, 8, 8, 6, 5),
    2**16: (8, 8, 8, 5, 5, 5),
}


def recommended_levels(codebook_size: int) -> list[int]:
    """Return the paper's levels for ``codebook_size`` (2^8, 2^10, ..., 2^16)."""
    if isinstance(codebook_size, bool) or not isinstance(codebook_size, int):
        raise TypeError(f"codebook_size must be an int, got {type(codebook_size).__name__}")
    if codebook_size not in RECOMMENDED_LEVELS:
        sizes = ", ".join(f"2^{int(math.log2(s))}" for s in RECOMMENDED_LEVELS)
        raise ValueError(
            f"no recommended FSQ levels for codebook_size={codebook_size}; "
            f"expected one of {sizes}, or pass levels=[...] explicitly"
        )
    return list(RECOMMENDED_LEVELS[codebook_size])
