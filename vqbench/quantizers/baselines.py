"""Baselines from vector-quantize-pytorch (1.32, 1.34), adapted to the vqbench protocol, with settings.

Every factory takes ``dim=None`` (the input dim; projections where it differs from the codebook
dim) and ``codebook_size=None`` (the operating point, default 2^10, per codebook or residual
level), plus keyword arguments passed through to the upstream class, which override the settings
below. FSQ-like quantizers turn ``codebook_size`` into the FSQ paper's recommended levels (so the
real size is the product of the levels, e.g. 1000 for 2^10); learned codebooks take it as is.

Each baseline is configured as its paper recommends. Those settings are declared once, here, as
the ``*_SETTINGS`` dicts: the factories apply them by default, and each is named as ``settings=``
where its quantizer is registered (``vqbench/quantizers/__init__.py``), so that the suite writes
them into every cell's config.
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
    upstream_reads_dead_code_ratio,
)
from .fsq.levels import recommended_levels

DEFAULT_CODEBOOK_SIZE = 2**10


def _upstream_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vector-quantize-pytorch")
    except PackageNotFoundError:
        return "(version unknown)"


def _pick(settings: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: settings[key] for key in keys}


# -- settings ---------------------------------------------------------------------------------

#: VQ (``vq``): VQ-VAE (arXiv 1711.00937, section 3.2 and appendix) with dead-code restarts.
VQ_SETTINGS: dict[str, Any] = {
    "commitment_weight": 0.25,  # VQ-VAE's beta
    "decay": 0.99,  # VQ-VAE's EMA codebook updates (upstream's default is 0.8)
    "kmeans_init": False,  # no k-means init (SoundStream's, on the first training batch: opt-in)
    # dead-code restarts (SoundStream, arXiv 2107.03312; Jukebox, arXiv 2005.00341): a code whose EMA
    # count of assigned vectors per batch falls below 2 (upstream's README value) is reset to a
    # random vector of the current batch ...
    "threshold_ema_dead_code": 2,
    # ... and below 1/4 of a uniformly used code's count per batch (tokens per batch / codebook
    # size), capped at threshold_ema_dead_code, so that small batches do not reset every code
    # (see ``VectorQuantizeAdapter``; None: the fixed count, as upstream)
    "dead_code_share": 0.25,
    "rotation_trick": False,  # plain straight-through gradients, as in VQ-VAE (upstream: the trick)
    "codebook_dim": 8,  # a low-dimensional lookup (ViT-VQGAN, arXiv 2110.04627)
}
#: ``vq-plain``: the FSQ paper's VQ baseline (arXiv 2309.15505): vq without restarts or k-means init.
VQ_PLAIN_SETTINGS: dict[str, Any] = {
    **{k: v for k, v in VQ_SETTINGS.items() if k != "dead_code_share"},
    "threshold_ema_dead_code": 0,
}
#: ``vq-cosine``: cosine-similarity lookup on l2-normalised codes (ViT-VQGAN), vq's settings
#: otherwise (it applies kmeans_init and dead_code_share as vq does; they are not recorded).
VQ_COSINE_SETTINGS = _pick(
    VQ_SETTINGS, "threshold_ema_dead_code", "commitment_weight", "decay", "rotation_trick", "codebook_dim"
)
#: ``vq-rotation``: the rotation trick (Fifty et al., ICLR 2025, arXiv 2410.06424): the gradient
#: reaches the encoder through the rotation and rescaling that takes each input to its code; the
#: paper changes nothing else, so every other setting is vq's.
VQ_ROTATION_SETTINGS: dict[str, Any] = {**VQ_SETTINGS, "rotation_trick": True}
#: Residual quantizers: 4 levels (SoundStream's residual VQ, arXiv 2107.03312, at a small depth),
#: ``codebook_size`` per level; each level has the settings of its single-level quantizer.
RESIDUAL_LEVELS = 4
#: ``residual-vq``: each level a VQ-VAE codebook with vq's settings (kmeans_init applies, unrecorded).
RESIDUAL_VQ_SETTINGS = _pick(
    {**VQ_SETTINGS, "num_quantizers": RESIDUAL_LEVELS},
    "threshold_ema_dead_code",
    "num_quantizers",
    "commitment_weight",
    "decay",
    "rotation_trick",
    "codebook_dim",
)
#: LFQ (``lfq``): MAGVIT-v2's entropy penalty (arXiv 2310.05737) with the settings of the
#: MAGVIT/MaskGIT tokenizer configs it builds on (``entropy_loss_ratio`` 0.1, ``entropy_temperature``
#: 0.01, ``commitment_cost`` 0.25; upstream's own commitment default is 0).
LFQ_SETTINGS: dict[str, Any] = {
    "inv_temperature": 100.0,  # entropy temperature 0.01 on -|z - c|^2
    "entropy_loss_weight": 0.1,
    "diversity_gamma": 1.0,
    "commitment_loss_weight": 0.25,
}
#: BSQ (``bsq``, arXiv 2406.07548): LFQ on the unit sphere, with the settings of the authors'
#: release (bsq-vit, ``imagenet_256x256_bsqvit_*`` configs): per-sample and codebook entropy
#: weights 1 (gamma0 = gamma = 1), no commitment loss (``beta: 0``). Their warm-up of the entropy
#: weight is not modelled.
BSQ_SETTINGS: dict[str, Any] = {
    "entropy_loss_weight": 0.1,
    "diversity_gamma": 1.0,
    "commitment_loss_weight": 0.0,
    "inv_temperature": 1.0,  # on the sphere
}
#: ``residual-lfq``: each level an LFQ with lfq's settings.
RESIDUAL_LFQ_SETTINGS: dict[str, Any] = {
    "num_quantizers": RESIDUAL_LEVELS,
    **{k: v for k, v in LFQ_SETTINGS.items() if k != "inv_temperature"},
}
#: ``residual-fsq``: FSQ levels (the paper's table) at each level.
RESIDUAL_FSQ_SETTINGS: dict[str, Any] = {"num_quantizers": RESIDUAL_LEVELS}
#: SimVQ (``simvq``, arXiv 2411.02038): a frozen random codebook through one learned linear map;
#: the commitment ``|sg(z) - q|^2 + 0.25 |z - sg(q)|^2`` (upstream's defaults: VQ-VAE's form).
SIMVQ_SETTINGS: dict[str, Any] = {
    "rotation_trick": False,  # plain straight-through gradients, as in the paper (upstream: the trick)
    "commitment_weight": 1.0,
    "input_to_quantize_commit_loss_weight": 0.25,
    "codebook_dim": 8,  # as for VQ, with projections added by the adapter
}
#: Latent quantization (``latent-quantize``, arXiv 2305.18378): per-dimension learned value sets
#: initialised on the FSQ levels' grid, quantization and commitment weights 0.1 (upstream's
#: defaults); see ``LatentQuantizeAdapter`` for what the adapter does differently from upstream.
LATENT_QUANTIZE_SETTINGS: dict[str, Any] = {
    "commitment_loss_weight": 0.1,
    "quantization_loss_weight": 0.1,
}
#: ``fsq-upstream``: upstream's own defaults (no loss; quantization in float32).
UPSTREAM_FSQ_SETTINGS: dict[str, Any] = {}

# What the factories pass to the upstream classes (the settings less the adapters' own options).
VQ_CODEBOOK_DIM = VQ_SETTINGS["codebook_dim"]
VQ_DEAD_CODE_SHARE = VQ_SETTINGS["dead_code_share"]
VQ_DEFAULTS = {k: v for k, v in VQ_SETTINGS.items() if k not in ("dead_code_share", "codebook_dim")}
LFQ_INV_TEMPERATURE = LFQ_SETTINGS["inv_temperature"]
LFQ_DEFAULTS = {k: v for k, v in LFQ_SETTINGS.items() if k != "inv_temperature"}
BSQ_INV_TEMPERATURE = BSQ_SETTINGS["inv_temperature"]
BSQ_DEFAULTS = {k: v for k, v in BSQ_SETTINGS.items() if k != "inv_temperature"}
SIMVQ_DEFAULTS = _pick(
    SIMVQ_SETTINGS, "rotation_trick", "input_to_quantize_commit_loss_weight", "commitment_weight"
)
LATENT_QUANTIZE_DEFAULTS: dict[str, Any] = {**LATENT_QUANTIZE_SETTINGS, "optimize_values": True}

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


def _dead_code_args(config: dict[str, Any]) -> dict[str, Any]:
    """The VQ config in the installed release's terms: the dead-code rule is declared as a count per
    batch (``threshold_ema_dead_code``, as the papers state it); 1.34 reads a ratio instead, which the
    adapter sets per batch to the same count (``set_dead_code_threshold``), so here it only turns
    restarts on or off."""
    if not upstream_reads_dead_code_ratio() or "threshold_ema_dead_code" not in config:
        return config
    args = {k: v for k, v in config.items() if k != "threshold_ema_dead_code"}
    args["dead_code_threshold_ratio"] = 0.1 if config["threshold_ema_dead_code"] else 0.0
    return args


def _build(cls: type[nn.Module], **config: Any) -> nn.Module:
    """Instantiate an upstream class; its assertions become ValueErrors that name the config."""
    try:
        return cls(**config)
    except TypeError as exc:
        params = ", ".join(p for p in inspect.signature(cls.__init__).parameters if p != "self")
        raise TypeError(
            f"{cls.__name__} of vector-quantize-pytorch {_upstream_version()} does not accept this "
            f"config ({exc}); it takes: {params}"
        ) from exc
    except AssertionError as exc:
        shown = {k: v for k, v in config.items() if not isinstance(v, nn.Module)}
        raise ValueError(
            f"{cls.__name__} of vector-quantize-pytorch {_upstream_version()} rejected config {shown}: "
            f"{exc or 'invalid combination'}"
        ) from exc


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
    """VQ-VAE codebook (arXiv 1711.00937), euclidean, EMA updates, with ``VQ_SETTINGS``.

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
    inner = _build(VectorQuantize, **_dead_code_args(config))
    return VectorQuantizeAdapter(
        inner,
        dim=dim,
        codebook_size=size,
        num_codebooks=heads,
        config={**config, "dead_code_share": dead_code_share},
        dead_code_count=config.get("threshold_ema_dead_code", 0),
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
    the tokens (default 1: every token).
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

    The authors' settings (``BSQ_SETTINGS``): entropy weight 0.1, inverse temperature 1, no
    commitment loss; MAGVIT's (``inv_temperature=100``, ``commitment_loss_weight=0.25``) on request.
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
    inner = _build(ResidualVQ, **_dead_code_args(config))
    return ResidualAdapter(
        inner,
        dim=dim,
        codebook_size=size,
        num_codebooks=num_quantizers,
        config=config,
        dead_code_count=config.get("threshold_ema_dead_code", 0),
    )


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
    "BSQ_SETTINGS",
    "DEFAULT_CODEBOOK_SIZE",
    "LATENT_QUANTIZE_SETTINGS",
    "LFQ_SETTINGS",
    "RESIDUAL_FSQ_SETTINGS",
    "RESIDUAL_LFQ_SETTINGS",
    "RESIDUAL_VQ_SETTINGS",
    "SIMVQ_SETTINGS",
    "UPSTREAM_FSQ_SETTINGS",
    "VQ_COSINE_SETTINGS",
    "VQ_PLAIN_SETTINGS",
    "VQ_ROTATION_SETTINGS",
    "VQ_SETTINGS",
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
    "vector_quantize_plain",
    "vector_quantize_rotation",
]
