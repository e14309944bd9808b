"""vqbench's FSQ on the suite's quantizer protocol: the registry's ``fsq``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from .._adapters import FSQAdapter
from .module import FSQ
from .paths import PATH_DEVICES


class VqbenchFSQAdapter(FSQAdapter):
    """The protocol adapter of ``vqbench.FSQ``: upstream FSQ's, plus ``encode`` (indices only)."""

    def encode(self, x: Tensor) -> Tensor:
        """Indices ``x.shape[:-1]`` (plus the codebook axis) of channel-last ``x``, no codes written."""
        self.check_input(x)
        flat = x.reshape(-1, self.dim).to(self._dtype_probe.dtype)
        indices = self.inner.encode(flat[None])[0]
        return indices.reshape(*x.shape[:-1], *indices.shape[1:])


def fsq_quantizer(
    dim: int | None = None,
    codebook_size: int | None = None,
    *,
    levels: Sequence[int] | None = None,
    num_codebooks: int = 1,
    **kwargs: Any,
) -> VqbenchFSQAdapter:
    """vqbench's FSQ on the suite's protocol: channel-last ``(..., dim)`` in, ``QuantizerOutput`` out.

    The registry's ``fsq``. ``codebook_size`` is an operating point (the FSQ paper's levels), or
    pass ``levels``; other keyword arguments go to :class:`FSQ` (``backend``, ``preserve_symmetry``,
    ...). The wrapped module is ``.inner``. Layout options are fixed by the protocol.
    """
    for name in ("channel_first", "return_indices"):
        if name in kwargs:
            raise ValueError(
                f"{name}={kwargs[name]!r} is not configurable here: the protocol takes channel-last "
                "input (..., dim) and always returns indices; use vqbench.FSQ directly for other layouts"
            )
    keep = num_codebooks > 1
    given = kwargs.pop("keep_num_codebooks_dim", None)
    if given is not None and bool(given) != keep:
        raise ValueError(
            f"keep_num_codebooks_dim={given!r} conflicts with the protocol: indices have a trailing "
            f"codebook axis exactly when num_codebooks > 1 (num_codebooks={num_codebooks})"
        )
    inner = FSQ(levels, dim, num_codebooks, codebook_size=codebook_size, **kwargs)
    config = dict(levels=inner.levels, dim=inner.dim, num_codebooks=inner.num_codebooks, **kwargs)
    return VqbenchFSQAdapter(
        inner,
        dim=inner.dim,
        codebook_size=inner.codebook_size,
        num_codebooks=inner.num_codebooks,
        config=config,
    )


#: The suite's backend axis offers FSQ's paths, each on the devices it runs on (read by
#: ``vqbench.quantizers.offered_backends``, for planning and for building cells).
fsq_quantizer.BACKENDS = dict(PATH_DEVICES)


__all__ = ["VqbenchFSQAdapter", "fsq_quantizer"]
