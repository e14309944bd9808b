"""Quantizers: the protocol, the registry, vqbench's FSQ and the baseline adapters."""

from ._protocol import Quantizer, QuantizerOutput, check_input, is_quantizer
from ._registry import (
    ENTRY_POINT_GROUP,
    MEMORY_MODELS,
    PluginLoadError,
    QuantizerSpec,
    UnknownQuantizerError,
    backend_unavailable,
    create_quantizer,
    default_settings,
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

# What each built-in is, for filtering and reports (the `vqbench list` table measures the rest).
_IMPLICIT, _LEARNED, _AUX, _MULTI = "implicit-codebook", "learned-codebook", "aux-loss", "multi-codebook"
# memory: "dense" where the forward computes a tokens x codes matrix (distances, soft assignments)
_DENSE, _LINEAR = "dense", "linear"
_NAMES: list[str] = []


def _builtin(name: str, target: str, description: str, *, source: str = _UPSTREAM, **declared) -> None:
    """Register one of vqbench's own quantizers; it must declare family, memory and settings."""
    register_quantizer(
        name, target, source=source, description=description, default=True, builtin=True, **declared
    )
    _NAMES.append(name)


# One line per built-in: name, lazy factory, description, and what the suite needs to know of it.
# Settings are the factory's defaults, declared (with their papers) in baselines.py.
_builtin(
    "fsq", "vqbench.quantizers.fsq:fsq_quantizer", "Finite Scalar Quantization (vqbench)", source="vqbench",
    family="fsq", memory=_LINEAR, settings={}, tags=(_IMPLICIT,),
)  # fmt: skip
_builtin(
    "fsq-upstream", f"{_B}:upstream_fsq", "FSQ as implemented upstream",
    family="fsq", memory=_LINEAR, settings=f"{_B}:UPSTREAM_FSQ_SETTINGS", tags=(_IMPLICIT,),
)  # fmt: skip
_builtin(
    "vq", f"{_B}:vector_quantize", "VQ-VAE codebook, euclidean, EMA updates",
    family="vq", memory=_DENSE, settings=f"{_B}:VQ_SETTINGS", tags=(_LEARNED, _AUX, "ema"),
)  # fmt: skip
_builtin(
    "vq-plain", f"{_B}:vector_quantize_plain",
    "VQ-VAE codebook without dead-code restarts (the FSQ paper's baseline)",
    family="vq", memory=_DENSE, settings=f"{_B}:VQ_PLAIN_SETTINGS", tags=(_LEARNED, _AUX, "ema"),
)  # fmt: skip
_builtin(
    "vq-cosine", f"{_B}:vector_quantize_cosine", "VQ with cosine similarity (l2-normed codes)",
    family="vq", memory=_DENSE, settings=f"{_B}:VQ_COSINE_SETTINGS", tags=(_LEARNED, _AUX, "ema"),
)  # fmt: skip
_builtin(
    "vq-rotation", f"{_B}:vector_quantize_rotation", "VQ with the rotation trick (Fifty et al., ICLR 2025)",
    family="vq", memory=_DENSE, settings=f"{_B}:VQ_ROTATION_SETTINGS", tags=(_LEARNED, _AUX, "ema"),
)  # fmt: skip
_builtin(
    "lfq", f"{_B}:lookup_free", "Lookup-free quantization (MAGVIT-v2)",
    family="lfq", memory=_DENSE, settings=f"{_B}:LFQ_SETTINGS", tags=(_IMPLICIT, _AUX),
)  # fmt: skip
_builtin(
    "bsq", f"{_B}:binary_spherical", "Binary spherical quantization (LFQ on the sphere)",
    family="lfq", memory=_DENSE, settings=f"{_B}:BSQ_SETTINGS", tags=(_IMPLICIT, _AUX),
)  # fmt: skip
_builtin(
    "residual-vq", f"{_B}:residual_vq", "Residual VQ (SoundStream)",
    family="residual", memory=_DENSE, settings=f"{_B}:RESIDUAL_VQ_SETTINGS",
    tags=(_LEARNED, _AUX, "ema", _MULTI),
)  # fmt: skip
_builtin(
    "residual-fsq", f"{_B}:residual_fsq", "Residual FSQ",
    family="residual", memory=_LINEAR, settings=f"{_B}:RESIDUAL_FSQ_SETTINGS", tags=(_IMPLICIT, _MULTI),
)  # fmt: skip
_builtin(
    "residual-lfq", f"{_B}:residual_lfq", "Residual LFQ",
    family="residual", memory=_DENSE, settings=f"{_B}:RESIDUAL_LFQ_SETTINGS", tags=(_IMPLICIT, _AUX, _MULTI),
)  # fmt: skip
_builtin(
    "simvq", f"{_B}:sim_vq", "SimVQ: codebook through a learned linear map",
    family="vq", memory=_DENSE, settings=f"{_B}:SIMVQ_SETTINGS", tags=(_LEARNED, _AUX),
)  # fmt: skip
_builtin(
    "latent-quantize", f"{_B}:latent_quantize", "Latent quantization (per-dim learned levels)",
    family="fsq", memory=_LINEAR, settings=f"{_B}:LATENT_QUANTIZE_SETTINGS", tags=(_IMPLICIT, _LEARNED, _AUX),
)  # fmt: skip

#: vqbench's own registrations (its FSQ and the upstream baselines); anything else is a plugin.
BUILTIN_NAMES = frozenset(_NAMES)

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
    "MEMORY_MODELS",
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
    "default_settings",
    "get_quantizer_spec",
    "is_quantizer",
    "list_quantizers",
    "offered_backends",
    "plugin_errors",
    "recommended_levels",
    "register_quantizer",
    "reload_entry_points",
]
