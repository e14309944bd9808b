"""Quantizers: the protocol, the registry, vqbench's FSQ and the baseline adapters."""

from ._protocol import Quantizer, QuantizerOutput, check_input, is_quantizer
from ._registry import (
    ENTRY_POINT_GROUP,
    PluginLoadError,
    QuantizerSpec,
    UnknownQuantizerError,
    backend_unavailable,
    create_quantizer,
    get_quantizer_spec,
    list_quantizers,
    offered_backends,
    plugin_errors,
    register_quantizer,
    reload_entry_points,
)
from .fsq.levels import RECOMMENDED_LEVELS, recommended_levels

_UPSTREAM = "vector-quantize-pytorch"
_B = "vqbench.quantizers.baselines"

# name, lazy target, family, source, description
_BUILTINS = [
    ("fsq", "vqbench.quantizers.fsq:fsq_quantizer", "fsq", "vqbench", "Finite Scalar Quantization (vqbench)"),
    ("fsq-upstream", f"{_B}:upstream_fsq", "fsq", _UPSTREAM, "FSQ as implemented upstream"),
    ("vq", f"{_B}:vector_quantize", "vq", _UPSTREAM, "VQ-VAE codebook, euclidean, EMA updates"),
    (
        "vq-plain",
        f"{_B}:vector_quantize_plain",
        "vq",
        _UPSTREAM,
        "VQ-VAE codebook without dead-code restarts (the FSQ paper's baseline)",
    ),
    (
        "vq-cosine",
        f"{_B}:vector_quantize_cosine",
        "vq",
        _UPSTREAM,
        "VQ with cosine similarity (l2-normed codes)",
    ),
    (
        "vq-rotation",
        f"{_B}:vector_quantize_rotation",
        "vq",
        _UPSTREAM,
        "VQ with the rotation trick (Fifty et al., ICLR 2025)",
    ),
    ("lfq", f"{_B}:lookup_free", "lfq", _UPSTREAM, "Lookup-free quantization (MAGVIT-v2)"),
    ("bsq", f"{_B}:binary_spherical", "lfq", _UPSTREAM, "Binary spherical quantization (LFQ on the sphere)"),
    ("residual-vq", f"{_B}:residual_vq", "residual", _UPSTREAM, "Residual VQ (SoundStream)"),
    ("residual-fsq", f"{_B}:residual_fsq", "residual", _UPSTREAM, "Residual FSQ"),
    ("residual-lfq", f"{_B}:residual_lfq", "residual", _UPSTREAM, "Residual LFQ"),
    ("simvq", f"{_B}:sim_vq", "vq", _UPSTREAM, "SimVQ: codebook through a learned linear map"),
    (
        "latent-quantize",
        f"{_B}:latent_quantize",
        "fsq",
        _UPSTREAM,
        "Latent quantization (per-dim learned levels)",
    ),
]

#: vqbench's own registrations (its FSQ and the upstream baselines); anything else is a plugin.
BUILTIN_NAMES = frozenset(b[0] for b in _BUILTINS)

# What each built-in is, for filtering and reports (the `vqbench list` table measures the rest).
_IMPLICIT, _LEARNED, _AUX, _MULTI = "implicit-codebook", "learned-codebook", "aux-loss", "multi-codebook"
_TAGS: dict[str, tuple[str, ...]] = {
    "fsq": (_IMPLICIT,),
    "fsq-upstream": (_IMPLICIT,),
    "vq": (_LEARNED, _AUX, "ema"),
    "vq-plain": (_LEARNED, _AUX, "ema"),
    "vq-cosine": (_LEARNED, _AUX, "ema"),
    "vq-rotation": (_LEARNED, _AUX, "ema"),
    "lfq": (_IMPLICIT, _AUX),
    "bsq": (_IMPLICIT, _AUX),
    "residual-vq": (_LEARNED, _AUX, "ema", _MULTI),
    "residual-fsq": (_IMPLICIT, _MULTI),
    "residual-lfq": (_IMPLICIT, _AUX, _MULTI),
    "simvq": (_LEARNED, _AUX),
    "latent-quantize": (_IMPLICIT, _LEARNED, _AUX),
}

for _name, _target, _family, _source, _doc in _BUILTINS:
    register_quantizer(
        _name, _target, family=_family, source=_source, description=_doc, default=True, tags=_TAGS[_name]
    )

# The library classes, imported on first use (they pull in the fused paths).
_LAZY = {"FSQ": "vqbench.quantizers.fsq", "FSQOutput": "vqbench.quantizers.fsq"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vqbench.quantizers' has no attribute {name!r}")


__all__ = [
    "BUILTIN_NAMES",
    "ENTRY_POINT_GROUP",
    "FSQ",
    "FSQOutput",
    "PluginLoadError",
    "Quantizer",
    "QuantizerOutput",
    "QuantizerSpec",
    "RECOMMENDED_LEVELS",
    "UnknownQuantizerError",
    "backend_unavailable",
    "check_input",
    "create_quantizer",
    "get_quantizer_spec",
    "is_quantizer",
    "list_quantizers",
    "offered_backends",
    "plugin_errors",
    "recommended_levels",
    "register_quantizer",
    "reload_entry_points",
]
