"""Baselines from vector-quantize-pytorch (1.32), adapted to the vqbench protocol.

Every factory takes ``dim=None`` (the input dim; projections where it differs from the codebook
dim) and ``codebook_size=None`` (the operating point, default 2^10, per codebook or residual
level), plus keyword arguments passed through to the upstream class, which override the defaults
below. FSQ-like quantizers turn ``codebook_size`` into the FSQ paper's recommended levels (so the
real size is the product of the levels, e.g. 1000 for 2^10); learned codebooks take it as is.

Defaults and where they come from (measured effects: the reconstruction benchmark on digits,
200 steps, 2^10 codes, mean of seeds 0 and 1, unless said otherwise):
- VQ (``vq``, ``vq-cosine``, ``residual-vq``): commitment weight 0.25 and EMA decay 0.99 (VQ-VAE,
  arXiv 1711.00937, section 3.2 and appendix), plain straight-through gradients (VQ-VAE; upstream
  defaults to the rotation trick, available as ``rotation_trick=True``), codebook dim 8 (the
  low-dimensional lookup of ViT-VQGAN, arXiv 2110.04627, which improves usage; also what DESIGN's
  cost figures assume), and dead-code replacement: a code whose EMA count of assigned vectors per
  batch falls below ``threshold_ema_dead_code`` = 2 is reset to a random vector of the current
  batch (SoundStream's codebook restarts, arXiv 2107.03312; Jukebox's random restarts, arXiv
  2005.00341; 2 is the value upstream's README recommends and its ``Codebook`` default). Without
  it the EMA codebook, initialised far from the encoder's outputs, keeps a dozen or so live codes
  (utilization 3%, 15.2 dB); with it 96% and 18.2 dB (2^12: 0.5% -> 68%, 14.9 -> 17.2 dB); decay
  0.8 (upstream's default) instead of 0.99 measured the same. The initial cluster sizes are 1, so
  the first training batch already replaces every code (a data-dependent init); ``kmeans_init=True``
  (SoundStream's k-means on the first batch) adds nothing measurable on top and stays off; when it
  is on, the adapter runs it on the first *training* batch only (upstream runs it on any first
  forward, so an eval pass would initialise the codebook from evaluation data). The dead-code
  threshold counts vectors per batch: with fewer tokens per batch than codes, most codes are reset
  at every step, which keeps usage high but makes the codebook closer to a sample of recent
  batches. So ``vq`` scales it: a code is dead when its count falls below ``dead_code_share`` =
  0.25 of a uniformly used code's count per batch (tokens per batch / codebook size), capped at
  ``threshold_ema_dead_code``; at 2^8 codes and 1,568 tokens per batch that is 1.5, at 2^14 0.024.
  ``vq-plain`` is the FSQ paper's baseline: no dead-code restarts and no k-means init.
  ``vq-cosine`` looks codes up by cosine similarity on l2-normalised vectors (ViT-VQGAN).
  ``vq-rotation`` is ``vq`` with the rotation trick (Fifty et al., "Restructuring Vector
  Quantization with the Rotation Trick", ICLR 2025, arXiv 2410.06424): the gradient reaches the
  encoder through the rotation and rescaling that takes the input to its code, in place of the
  straight-through copy; the paper changes nothing else (its VQ-VAE runs keep the commitment
  weight 0.25 and the codebook updates of the model they modify), so every other setting is vq's.
- LFQ (``lfq``, ``residual-lfq``): MAGVIT-v2's entropy penalty (arXiv 2310.05737) with weight 0.1,
  diversity gamma 1.0 and temperature 0.01 (``inv_temperature`` 100 on ``-|z - c|^2``), and
  commitment weight 0.25: the settings of the MAGVIT/MaskGIT tokenizer configs that MAGVIT-v2
  builds on (``entropy_loss_ratio`` 0.1, ``entropy_temperature`` 0.01, ``commitment_cost`` 0.25);
  upstream's own commitment default is 0. LFQ splits every latent dim at zero, so it needs
  latents that vary around zero from the first step: an encoder whose untrained outputs share one
  sign pattern (every token in one code) locks in that code, since the commitment and per-sample
  entropy terms push the latents away from zero before the batch-entropy term (saturated at this
  temperature) can spread them. That is a property of the encoder, not of these settings: on
  vqbench's conv encoder without normalization every digits token starts in one code and LFQ
  ends at 0.6% utilization, 12.3 dB; with GroupNorm in the encoder (as MAGVIT-v2's encoder has
  before its output conv) 19%, 15.3 dB. No setting of the penalty rescues it without that
  (entropy weight 0.3 or 0.5, commitment 0, inverse temperature 1 or 10, and
  ``frac_per_sample_entropy`` 0.25 all stay at or below 24% and 14.2 dB, single seeds). With the
  normalized encoder a softer
  ``inv_temperature=10`` measured 30% and 16.3 dB (and a lower MSE on gaussian-mixture vectors,
  0.083 against 0.100); it is not the paper's value, so it stays opt-in.
- BSQ (``bsq``): LFQ on the unit sphere (arXiv 2406.07548): inputs are l2-normalised and codes are
  ``+-1/sqrt(L)``; settings of the authors' release (bsq-vit, ``imagenet_256x256_bsqvit_*``
  configs and ``BinarySphericalQuantizer``): entropy weight 0.1 with per-sample and codebook
  entropy weights 1 (gamma0 = gamma = 1), inverse temperature 1 on the sphere, and no commitment
  loss (``beta: 0``). Their 3x warm-up of the entropy weight over the first 2000 steps is not
  modelled (measured: no consistent gain in a short run). MAGVIT's temperature and commitment
  0.25, used here before, gave more codes (34% against 14%) but 14.0 against 14.7 dB, and an MSE
  of 0.092 against 0.073 on gaussian-mixture vectors (2^12: 14.6 against 14.8 dB).
- Residual quantizers: 4 levels (SoundStream's residual VQ, arXiv 2107.03312, at a small depth),
  ``codebook_size`` per level; each level has the defaults of its single-level quantizer.
- SimVQ (``simvq``): a frozen random codebook through one learned linear map (arXiv 2411.02038),
  commitment ``|sg(z) - q|^2 + 0.25 |z - sg(q)|^2`` (upstream's defaults: VQ-VAE's form), plain
  straight-through gradients as in the paper (upstream defaults to the rotation trick; measured:
  no gain in this benchmark), codebook dim 8 as for VQ, with projections added by the adapter.
- Latent quantization (``latent-quantize``, arXiv 2305.18378): per-dimension learned value sets
  initialised on the FSQ levels' grid, quantization and commitment weights 0.1 (upstream's
  defaults); see ``LatentQuantizeAdapter`` for what the adapter does differently from upstream.

Costs: the LFQ/BSQ entropy terms compare every training token with every code (time and memory
``tokens x codebook_size`` per step and level, so ``residual-lfq`` pays it once per level); upstream's
``frac_per_sample_entropy`` < 1 estimates both entropy terms from that fraction of the tokens.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from torch import nn

from ._adapters import (
    FSQAdapter,
    LatentQuantizeAdapter,
    LFQAdapter,
    ResidualAdapter,
    SimVQAdapter,
    UpstreamQuantizer,
    VectorQuantizeAdapter,
)
from .fsq.levels import recommended_levels

DEFAULT_CODEBOOK_SIZE = 2**10
VQ_CODEBOOK_DIM = 8
RESIDUAL_LEVELS = 4
VQ_DEAD_CODE_SHARE = 0.25

VQ_DEFAULTS: dict[str, Any] = {
    "commitment_weight": 0.25,
    "decay": 0.99,
    "kmeans_init": False,
    "threshold_ema_dead_code": 2,
    "rotation_trick": False,
}
LFQ_DEFAULTS: dict[str, Any] = {
    "entropy_loss_weight": 0.1,
    "diversity_gamma": 1.0,
    "commitment_loss_weight": 0.25,
}
BSQ_DEFAULTS: dict[str, Any] = {
    "entropy_loss_weight": 0.1,
    "diversity_gamma": 1.0,
    "commitment_loss_weight": 0.0,
}
BSQ_INV_TEMPERATURE = 1.0
LFQ_INV_TEMPERATURE = 100.0
SIMVQ_DEFAULTS: dict[str, Any] = {
    "rotation_trick": False,
    "input_to_quantize_commit_loss_weight": 0.25,
    "commitment_weight": 1.0,
}
LATENT_QUANTIZE_DEFAULTS: dict[str, Any] = {
    "commitment_loss_weight": 0.1,
    "quantization_loss_weight": 0.1,
    "optimize_values": True,
}

# Layout options that the adapters own: vqbench quantizers always take channel-last (..., dim).
_LAYOUT_OPTIONS = (
    "channel_first",
    "is_channel_first",
    "channel_last",
    "accept_image_fmap",
    "accept_3d_fmap",
    "return_indices",
)


# -- argument checks --------------------------------------------------------------------------


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _size(codebook_size: Any, *, power_of_two: bool = False) -> int:
    size = DEFAULT_CODEBOOK_SIZE if codebook_size is None else codebook_size
    _positive_int("codebook_size", size, minimum=2)
    if power_of_two and size & (size - 1):
        lower, upper = 2 ** int(math.log2(size)), 2 ** math.ceil(math.log2(size))
        raise ValueError(
            f"codebook_size must be a power of two for lookup-free quantization "
            f"(one bit per code dim), got {size}; try {lower} or {upper}"
        )
    return size


def _levels(codebook_size: Any, levels: Any) -> list[int]:
    if levels is not None:
        if codebook_size is not None:
            raise ValueError(
                f"pass either codebook_size (an operating point) or levels, not both "
                f"(got codebook_size={codebook_size!r}, levels={levels!r})"
            )
        if not isinstance(levels, (list, tuple)) or not levels:
            raise ValueError(f"levels must be a non-empty list of integers, got {levels!r}")
        return [_positive_int("each level", level, minimum=2) for level in levels]
    return recommended_levels(DEFAULT_CODEBOOK_SIZE if codebook_size is None else codebook_size)


def _no_layout_options(kwargs: dict[str, Any]) -> None:
    for name in _LAYOUT_OPTIONS:
        if name in kwargs:
            raise ValueError(
                f"{name}={kwargs[name]!r} is not configurable here: vqbench quantizers take channel-last "
                "input (..., dim) and always return indices; move channels last before calling"
            )


def _keep_codebook_axis(kwargs: dict[str, Any], num_codebooks: int) -> bool:
    keep = num_codebooks > 1
    given = kwargs.pop("keep_num_codebooks_dim", None)
    if given is not None and bool(given) != keep:
        raise ValueError(
            f"keep_num_codebooks_dim={given!r} conflicts with the protocol: indices have a trailing "
            f"codebook axis exactly when num_codebooks > 1 (num_codebooks={num_codebooks})"
        )
    return keep


def _build(cls: type[nn.Module], **config: Any) -> nn.Module:
    """Instantiate an upstream class; its assertions become ValueErrors that name the config."""
    try:
        return cls(**config)
    except TypeError as exc:
        params = ", ".join(p for p in inspect.signature(cls.__init__).parameters if p != "self")
        raise TypeError(f"{cls.__name__} does not accept this config ({exc}); it takes: {params}") from exc
    except AssertionError as exc:
        shown = {k: v for k, v in config.items() if not isinstance(v, nn.Module)}
        raise ValueError(f"{cls.__name__} rejected config {shown}: {exc or 'invalid combination'}") from exc


# -- FSQ-like ---------------------------------------------------------------------------------


def upstream_fsq(
    dim: int | None = None,
    codebook_size: int | None = None,
    *,
    levels: list[int] | None = None,
    num_codebooks: int = 1,
    **kwargs: Any,
) -> UpstreamQuantizer:
    """FSQ as implemented in vector-quantize-pytorch (arXiv 2309.15505), levels from the paper's table.

    Upstream's own defaults otherwise (no loss; quantization in float32).
    """
    from vector_quantize_pytorch import FSQ

    _no_layout_options(kwargs)
    levels = _levels(codebook_size, levels)
    _positive_int("num_codebooks", num_codebooks)
    dim = len(levels) * num_codebooks if dim is None else _positive_int("dim", dim)
    keep = _keep_codebook_axis(kwargs, num_codebooks)
    config = dict(levels=levels, dim=dim, num_codebooks=num_codebooks, keep_num_codebooks_dim=keep, **kwargs)
    inner = _build(FSQ, **config)
    return FSQAdapter(
        inner, dim=dim, codebook_size=inner.codebook_size, num_codebooks=num_codebooks, config=config
    )


def latent_quantize(
    dim: int | None = None,
    codebook_size: int | None = None,
    *,
    levels: list[int] | None = None,
    num_codebooks: int = 1,
    **kwargs: Any,
) -> UpstreamQuantizer:
    """Latent quantization (arXiv 2305.18378): FSQ-like levels, learned values per dimension.

    Levels from the FSQ paper's table for ``codebook_size``; weights 0.1/0.1 (upstream's defaults).
    """
    from vector_quantize_pytorch import LatentQuantize

    _no_layout_options(kwargs)
    if kwargs.get("in_place_codebook_optimizer") is not None:
        raise ValueError(
            "in_place_codebook_optimizer is not supported (upstream 1.32 fails on it); train the values "
            "with the model's optimizer"
        )
    levels = _levels(codebook_size, levels)
    _positive_int("num_codebooks", num_codebooks)
    dim = len(levels) * num_codebooks if dim is None else _positive_int("dim", dim)
    keep = _keep_codebook_axis(kwargs, num_codebooks)
    config = dict(
        LATENT_QUANTIZE_DEFAULTS,
        levels=levels,
        dim=dim,
        num_codebooks=num_codebooks,
        keep_num_codebooks_dim=keep,
        **kwargs,
    )
    inner = _build(LatentQuantize, **config)
    return LatentQuantizeAdapter(
        inner, dim=dim, codebook_size=inner.codebook_size, num_codebooks=num_codebooks, config=config
    )


# -- learned codebooks ------------------------------------------------------------------------


def vector_quantize(
    dim: int | None = None,
    codebook_size: int | None = None,
    *,
    codebook_dim: int = VQ_CODEBOOK_DIM,
    heads: int = 1,
    dead_code_share: float | None = VQ_DEAD_CODE_SHARE,
    **kwargs: Any,
) -> UpstreamQuantizer:
    """VQ-VAE codebook (arXiv 1711.00937), euclidean, EMA updates; see the module docstring.

    ``dead_code_share`` scales the dead-code threshold with the tokens per batch (see
    ``VectorQuantizeAdapter._scale_dead_code_threshold``; None: the fixed count, as upstream).
    """
    from vector_quantize_pytorch import VectorQuantize

    _no_layout_options(kwargs)
    size = _size(codebook_size)
    _positive_int("codebook_dim", codebook_dim)
    _positive_int("heads", heads)
    dim = codebook_dim * heads if dim is None else _positive_int("dim", dim)
    share_ok = isinstance(dead_code_share, int | float) and not isinstance(dead_code_share, bool)
    if dead_code_share is not None and not (share_ok and dead_code_share >= 0):
        raise ValueError(f"dead_code_share must be a number >= 0 or None, got {dead_code_share!r}")
    config = dict(VQ_DEFAULTS, dim=dim, codebook_size=size, codebook_dim=codebook_dim, heads=heads, **kwargs)
    inner = _build(VectorQuantize, **config)
    return VectorQuantizeAdapter(
        inner,
        dim=dim,
        codebook_size=size,
        num_codebooks=heads,
        config={**config, "dead_code_share": dead_code_share},
        dead_code_share=dead_code_share,
    )


def vector_quantize_plain(
    dim: int | None = None, codebook_size: int | None = None, **kwargs: Any
) -> UpstreamQuantizer:
    """The FSQ paper's VQ baseline: VQ-VAE's EMA codebook with no dead-code restarts and no k-means init."""
    return vector_quantize(
        dim,
        codebook_size,
        **{"threshold_ema_dead_code": 0, "kmeans_init": False, "dead_code_share": None, **kwargs},
    )


def vector_quantize_rotation(
    dim: int | None = None, codebook_size: int | None = None, **kwargs: Any
) -> UpstreamQuantizer:
    """VQ with the rotation trick (arXiv 2410.06424): ``vq``'s settings, ``rotation_trick=True``."""
    return vector_quantize(dim, codebook_size, **{"rotation_trick": True, **kwargs})


def vector_quantize_cosine(
    dim: int | None = None, codebook_size: int | None = None, **kwargs: Any
) -> UpstreamQuantizer:
    """VQ with cosine-similarity lookup on l2-normalised codes (ViT-VQGAN, arXiv 2110.04627), EMA."""
    return vector_quantize(dim, codebook_size, **{"use_cosine_sim": True, **kwargs})


def sim_vq(
    dim: int | None = None,
    codebook_size: int | None = None,
    *,
    codebook_dim: int = VQ_CODEBOOK_DIM,
    **kwargs: Any,
) -> UpstreamQuantizer:
    """SimVQ (arXiv 2411.02038): a frozen random codebook through a learned linear map."""
    from vector_quantize_pytorch import SimVQ

    _no_layout_options(kwargs)
    size = _size(codebook_size)
    _positive_int("codebook_dim", codebook_dim)
    dim = codebook_dim if dim is None else _positive_int("dim", dim)
    config = dict(SIMVQ_DEFAULTS, dim=codebook_dim, codebook_size=size, **kwargs)
    inner = _build(SimVQ, **config)
    return SimVQAdapter(inner, dim=dim, codebook_dim=codebook_dim, codebook_size=size, config=config)


# -- lookup-free ------------------------------------------------------------------------------


def lookup_free(
    dim: int | None = None,
    codebook_size: int | None = None,
    *,
    num_codebooks: int = 1,
    inv_temperature: float = LFQ_INV_TEMPERATURE,
    **kwargs: Any,
) -> UpstreamQuantizer:
    """Lookup-free quantization (MAGVIT-v2, arXiv 2310.05737): one sign bit per code dim.

    ``codebook_size`` must be a power of two; ``inv_temperature`` (100: MAGVIT's entropy temperature
    0.01, also upstream's forward default) sharpens the soft assignments of the entropy penalty. In
    train mode that penalty compares every token with every code (memory: tokens x codebook_size
    floats); ``frac_per_sample_entropy`` < 1 estimates both of its terms from a random fraction of
    the tokens (measured at 0.25: fewer codes used and lower PSNR, so it stays at 1).
    """
    from vector_quantize_pytorch import LFQ

    _no_layout_options(kwargs)
    size = _size(codebook_size, power_of_two=True)
    _positive_int("num_codebooks", num_codebooks)
    dim = int(math.log2(size)) * num_codebooks if dim is None else _positive_int("dim", dim)
    keep = _keep_codebook_axis(kwargs, num_codebooks)
    config = dict(
        LFQ_DEFAULTS,
        dim=dim,
        codebook_size=size,
        num_codebooks=num_codebooks,
        keep_num_codebooks_dim=keep,
        channel_first=False,
        **kwargs,
    )
    inner = _build(LFQ, **config)
    return LFQAdapter(
        inner,
        inv_temperature=inv_temperature,
        dim=dim,
        codebook_size=size,
        num_codebooks=num_codebooks,
        config={**config, "inv_temperature": inv_temperature},
    )


def binary_spherical(
    dim: int | None = None,
    codebook_size: int | None = None,
    *,
    inv_temperature: float = BSQ_INV_TEMPERATURE,
    **kwargs: Any,
) -> UpstreamQuantizer:
    """Binary spherical quantization (arXiv 2406.07548): LFQ with l2-normalised inputs and codes.

    The authors' settings (module docstring): entropy weight 0.1, inverse temperature 1, no
    commitment loss. MAGVIT's temperature (``inv_temperature=100``) and commitment weight 0.25
    measured more codes used but a lower PSNR.
    """
    config = {**BSQ_DEFAULTS, "spherical": True, **kwargs}
    return lookup_free(dim, codebook_size, inv_temperature=inv_temperature, **config)


# -- residual ---------------------------------------------------------------------------------


def residual_vq(
    dim: int | None = None,
    codebook_size: int | None = None,
    *,
    num_quantizers: int = RESIDUAL_LEVELS,
    codebook_dim: int = VQ_CODEBOOK_DIM,
    **kwargs: Any,
) -> UpstreamQuantizer:
    """Residual VQ (SoundStream, arXiv 2107.03312): each level quantizes the previous residual.

    Each level is a VQ with the ``vq`` defaults; the loss is the sum over levels. With
    ``quantize_dropout=True`` upstream marks the dropped levels with index -1 in train mode.
    """
    from vector_quantize_pytorch import ResidualVQ

    _no_layout_options(kwargs)
    size = _size(codebook_size)
    _positive_int("num_quantizers", num_quantizers)
    _positive_int("codebook_dim", codebook_dim)
    dim = codebook_dim if dim is None else _positive_int("dim", dim)
    config = dict(VQ_DEFAULTS, dim=dim, codebook_size=size, codebook_dim=codebook_dim, **kwargs)
    config["num_quantizers"] = num_quantizers
    inner = _build(ResidualVQ, **config)
    return ResidualAdapter(inner, dim=dim, codebook_size=size, num_codebooks=num_quantizers, config=config)


def residual_fsq(
    dim: int | None = None,
    codebook_size: int | None = None,
    *,
    levels: list[int] | None = None,
    num_quantizers: int = RESIDUAL_LEVELS,
    **kwargs: Any,
) -> UpstreamQuantizer:
    """Residual FSQ: FSQ levels (the paper's table) at each residual level, scaled down per level."""
    from vector_quantize_pytorch import ResidualFSQ

    _no_layout_options(kwargs)
    levels = _levels(codebook_size, levels)
    _positive_int("num_quantizers", num_quantizers)
    dim = len(levels) if dim is None else _positive_int("dim", dim)
    config = dict(levels=levels, dim=dim, num_quantizers=num_quantizers, **kwargs)
    inner = _build(ResidualFSQ, **config)
    return ResidualAdapter(
        inner, dim=dim, codebook_size=inner.codebook_size, num_codebooks=num_quantizers, config=config
    )


def residual_lfq(
    dim: int | None = None,
    codebook_size: int | None = None,
    *,
    num_quantizers: int = RESIDUAL_LEVELS,
    **kwargs: Any,
) -> UpstreamQuantizer:
    """Residual LFQ: LFQ (with the ``lfq`` defaults) at each level, codes halved per level."""
    from vector_quantize_pytorch import ResidualLFQ

    _no_layout_options(kwargs)
    size = _size(codebook_size, power_of_two=True)
    _positive_int("num_quantizers", num_quantizers)
    dim = int(math.log2(size)) if dim is None else _positive_int("dim", dim)
    config = dict(LFQ_DEFAULTS, dim=dim, codebook_size=size, num_quantizers=num_quantizers, **kwargs)
    inner = _build(ResidualLFQ, **config)
    return ResidualAdapter(inner, dim=dim, codebook_size=size, num_codebooks=num_quantizers, config=config)


__all__ = [
    "DEFAULT_CODEBOOK_SIZE",
    "binary_spherical",
    "latent_quantize",
    "lookup_free",
    "residual_fsq",
    "residual_lfq",
    "residual_vq",
    "sim_vq",
    "upstream_fsq",
    "vector_quantize",
    "vector_quantize_cosine",
]
