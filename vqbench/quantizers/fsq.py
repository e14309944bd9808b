"""vqbench's Finite Scalar Quantization (arXiv 2309.15505), with fast paths.

A drop-in replacement for ``vector_quantize_pytorch.FSQ`` (1.32): the same constructor arguments
and the same codes and indices, bit for bit, without its defects (a garbled ``indices_to_codes``,
float-truncated indices for large codebooks, silent out-of-range indices on NaN, an extreme shift
for 2-level channels). Quantization runs on one of several paths (``FSQ.BACKENDS``):

- ``"reference"``: the reference arithmetic (``_fsq_reference``), op for op;
- ``"torch"``: the same arithmetic in place, one output-sized buffer; any device;
- ``"cpu"``: a compiled C kernel that compares against the decision boundaries in input space
  (no ``tanh``), one pass (``_fsq_cpu``); float32 on the CPU;
- ``"triton"``: the same idea as a fused Triton kernel (``_fsq_triton``); CUDA.

``backend="auto"`` picks the fastest that can run (triton, cpu, torch, reference, in that order)
and falls back silently; a forced backend that cannot run raises. ``last_backend`` records the path
that ran. All paths give the reference's codes, indices and straight-through gradients bit for bit
(see ``_fsq_thresholds`` for why the comparison kernels are exact).
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Literal

import torch
from torch import Tensor, nn

from . import _fsq_cpu, _fsq_thresholds, _fsq_triton
from . import _fsq_reference as ref
from . import _fsq_torch as torch_path
from ._protocol import Quantizer, QuantizerOutput
from .levels import recommended_levels

DEFAULT_CODEBOOK_SIZE = 2**10
MAX_CODEBOOK_SIZE = 2**31  # indices are int32, as upstream's
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

ChannelFirst = bool | Literal["auto"]


def _check_levels(levels: object, preserve_symmetry: bool) -> list[int]:
    if isinstance(levels, torch.Tensor):
        levels = levels.tolist()
    if not isinstance(levels, (list, tuple)):
        raise TypeError(f"levels must be a list or tuple of integers, got {type(levels).__name__}")
    if len(levels) == 0:
        raise ValueError("levels must be a non-empty list of integers (one per channel), got []")
    out = []
    for level in levels:
        if isinstance(level, bool):
            raise TypeError(f"each level must be an integer, got {level!r} in {list(levels)}")
        try:
            out.append(operator.index(level))
        except TypeError:
            raise TypeError(f"each level must be an integer, got {level!r} in {list(levels)}") from None
    for level in out:
        if level < 2:
            raise ValueError(f"each level must be >= 2, got {level} in {out}")
        if level == 2 and not preserve_symmetry:
            raise ValueError(
                f"a level of 2 needs preserve_symmetry=True (the plain bound's shift is extreme there), "
                f"got levels {out}; use 3 or more levels per channel, or preserve_symmetry=True"
            )
    size = math.prod(out)
    if size > MAX_CODEBOOK_SIZE:
        raise ValueError(
            f"levels {out} give a codebook of {size} codes; int32 indices hold at most "
            f"{MAX_CODEBOOK_SIZE} (2^31): use fewer or smaller levels, or num_codebooks > 1"
        )
    return out


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


class FSQ(Quantizer):
    """Finite Scalar Quantization: each channel bounded and rounded to one of ``L_i`` levels.

    Input: channel-last ``(..., dim)`` with any leading axes, or channel-first ``(b, dim, ...)`` with
    ``channel_first=True``; ``channel_first="auto"`` reproduces upstream's rule (input with 4 or
    more axes is a channel-first image or video). Output: ``QuantizerOutput(codes, indices, None)``,
    codes in the input's layout and dtype, int32 indices of shape ``(...)``, with a trailing
    ``num_codebooks`` axis when ``keep_num_codebooks_dim``.

    Arguments shared with ``vector_quantize_pytorch.FSQ`` mean what they mean there (``scale`` is
    accepted and unused, as upstream). vqbench's own: ``codebook_size`` (an operating point: the FSQ
    paper's levels for 2^8 .. 2^16, used when ``levels`` is None; default 2^10), ``backend``
    (``"auto"`` or one of :attr:`BACKENDS`) and ``check_finite`` (raise on NaN/Inf input; off for
    speed, then NaN gives an unspecified code but never an index outside the codebook).
    """

    BACKENDS: tuple[str, ...] = ("reference", "torch", "cpu", "triton")

    def __init__(
        self,
        levels: Sequence[int] | None = None,
        dim: int | None = None,
        num_codebooks: int = 1,
        keep_num_codebooks_dim: bool | None = None,
        scale: float | None = None,
        allowed_dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64),
        channel_first: ChannelFirst = False,
        projection_has_bias: bool = True,
        return_indices: bool = True,
        force_quantization_f32: bool = True,
        preserve_symmetry: bool = False,
        noise_dropout: float = 0.0,
        bound_hard_clamp: bool = False,
        orthogonal_rotation: bool = False,
        *,
        codebook_size: int | None = None,
        backend: str = "auto",
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        if levels is None:
            levels = recommended_levels(DEFAULT_CODEBOOK_SIZE if codebook_size is None else codebook_size)
        elif codebook_size is not None:
            raise ValueError(
                f"pass either codebook_size (an operating point) or levels, not both "
                f"(got codebook_size={codebook_size!r}, levels={levels!r})"
            )
        levels = _check_levels(levels, bool(preserve_symmetry))
        num_codebooks = _check_int("num_codebooks", num_codebooks, 1)
        if keep_num_codebooks_dim is None:
            keep_num_codebooks_dim = num_codebooks > 1
        if num_codebooks > 1 and not keep_num_codebooks_dim:
            raise ValueError(
                f"keep_num_codebooks_dim=False needs num_codebooks=1 (indices carry one entry per "
                f"codebook), got num_codebooks={num_codebooks}"
            )
        if isinstance(noise_dropout, bool) or not isinstance(noise_dropout, (int, float)):
            raise TypeError(f"noise_dropout must be a float in [0, 1], got {type(noise_dropout).__name__}")
        if not 0.0 <= noise_dropout <= 1.0:
            raise ValueError(f"noise_dropout must be in [0, 1], got {noise_dropout}")
        if noise_dropout > 0 and not preserve_symmetry:
            raise ValueError(f"noise_dropout={noise_dropout} needs preserve_symmetry=True (as upstream)")
        if channel_first not in (True, False, "auto"):
            raise ValueError(f"channel_first must be True, False or 'auto', got {channel_first!r}")
        if backend != "auto" and backend not in self.BACKENDS:
            raise ValueError(f"backend must be 'auto' or one of {self.BACKENDS}, got {backend!r}")
        if not isinstance(allowed_dtypes, (tuple, list)) or not all(
            isinstance(d, torch.dtype) for d in allowed_dtypes
        ):
            raise TypeError(f"allowed_dtypes must be a tuple of torch dtypes, got {allowed_dtypes!r}")

        self.levels = list(levels)
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.int32), persistent=False)
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]]), dim=0, dtype=torch.int32)
        self.register_buffer("_basis", basis, persistent=False)
        self.scale = scale
        self.preserve_symmetry = bool(preserve_symmetry)
        self.noise_dropout = float(noise_dropout)
        self.codebook_dim = len(levels)
        self.num_codebooks = num_codebooks
        self.effective_codebook_dim = self.codebook_dim * num_codebooks
        self.keep_num_codebooks_dim = bool(keep_num_codebooks_dim)
        self.dim = self.effective_codebook_dim if dim is None else _check_int("dim", dim, 1)
        self.channel_first = channel_first
        self.has_projections = self.dim != self.effective_codebook_dim
        if self.has_projections:
            self.project_in: nn.Module = nn.Linear(
                self.dim, self.effective_codebook_dim, bias=projection_has_bias
            )
            self.project_out: nn.Module = nn.Linear(
                self.effective_codebook_dim, self.dim, bias=projection_has_bias
            )
        else:
            self.project_in = nn.Identity()
            self.project_out = nn.Identity()
        self.return_indices = bool(return_indices)
        self.codebook_size = math.prod(levels)
        self.allowed_dtypes = tuple(allowed_dtypes)
        self.force_quantization_f32 = bool(force_quantization_f32)
        self.bound_hard_clamp = bool(bound_hard_clamp)
        self.orthogonal_rotation = bool(orthogonal_rotation)
        if self.orthogonal_rotation:
            if len(set(levels)) != 1:
                warnings.warn(
                    f"orthogonal_rotation mixes channels of different level counts {levels}; "
                    "it is meant for symmetric levels",
                    stacklevel=2,
                )
            rot = torch.empty(self.codebook_dim, self.codebook_dim)
            nn.init.orthogonal_(rot)
            self.register_buffer("orthogonal_rot", rot)
        self.backend = backend
        self.check_finite = bool(check_finite)
        self.last_backend: str | None = None
        self._cache: dict[tuple, object] = {}

    # -- constants per device ---------------------------------------------------------------

    def _params(self, device: torch.device) -> ref.FSQParams:
        key = ("params", device)
        if key not in self._cache:
            levels = torch.tensor(self.levels, dtype=torch.int32, device=device)
            self._cache[key] = ref.make_params(
                levels, symmetric=self.preserve_symmetry, hard_clamp=self.bound_hard_clamp
            )
        return self._cache[key]  # type: ignore[return-value]

    def _thresholds(self, device: torch.device) -> Tensor:
        key = ("thresholds", device)
        if key not in self._cache:
            self._cache[key] = _fsq_thresholds.find_thresholds(
                self.levels, symmetric=self.preserve_symmetry, hard_clamp=self.bound_hard_clamp, device=device
            )
        return self._cache[key]  # type: ignore[return-value]

    def _code_table(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Codes per channel and level ``(d, max L)`` in ``dtype``: the reference's values, cast."""
        key = ("table", device, dtype)
        if key not in self._cache:
            p = self._params(device)
            width = max(self.levels)
            k = torch.arange(width, device=device).clamp(max=p.levels.to(torch.int64)[:, None] - 1)
            self._cache[key] = ref.level_indices_to_codes(k, _column_params(p)).to(dtype).contiguous()
        return self._cache[key]  # type: ignore[return-value]

    def _cpu_prepared(self) -> _fsq_cpu.Prepared:
        key = ("cpu",)
        if key not in self._cache:
            cpu = torch.device("cpu")
            p = self._params(cpu)
            self._cache[key] = _fsq_cpu.prepare(
                self._thresholds(cpu), p.half_width, p.sym_scale, p.basis, self.preserve_symmetry
            )
        return self._cache[key]  # type: ignore[return-value]

    # -- path choice ------------------------------------------------------------------------

    @classmethod
    def available_backends(cls, device: torch.device | str = "cpu") -> list[str]:
        """The paths that can run on ``device`` here (float32 input, default options)."""
        device = torch.device(device)
        names = ["reference", "torch"]
        if device.type == "cpu" and _fsq_cpu.available():
            names.append("cpu")
        if _fsq_triton.available(device):
            names.append("triton")
        return names

    def _why_not(self, name: str, z: Tensor) -> str:
        """'' when path ``name`` can quantize ``z`` (compute dtype, device), else the reason."""
        if name == "reference":
            return ""
        if name == "torch":
            if z.dtype in (torch.float32, torch.float64):
                return ""
            return f"it computes in float32/float64, and this input is quantized in {z.dtype}"
        if z.dtype != torch.float32:
            return f"it computes in float32, and this input is quantized in {z.dtype}"
        if name == "cpu":
            if z.device.type != "cpu":
                return f"it runs on the CPU, and the input is on {z.device}"
            return _fsq_cpu.unavailable_reason()
        if name == "triton":
            return _fsq_triton.unavailable_reason(z.device)
        raise ValueError(f"unknown FSQ backend {name!r}; expected one of {self.BACKENDS}")

    def _choose(self, z: Tensor) -> str:
        if self.backend != "auto":
            reason = self._why_not(self.backend, z)
            if reason:
                raise RuntimeError(
                    f"FSQ backend {self.backend!r} cannot run here: {reason}; "
                    f"use backend='auto' to fall back (paths here: {self.available_backends(z.device)})"
                )
            return self.backend
        if _compiling():
            return "reference"  # plain tensor ops: what the compiler fuses best
        for name in ("triton", "cpu", "torch"):
            if not self._why_not(name, z):
                return name
        return "reference"

    # -- quantization -----------------------------------------------------------------------

    def _raise_non_finite(self, count: int, total: int) -> None:
        raise ValueError(
            f"expected finite input to FSQ, got {count} NaN/Inf value(s) among {total}; "
            "pass check_finite=False to skip this check"
        )

    def _check_finite(self, z: Tensor) -> None:
        with torch.no_grad():
            if torch.isfinite(z.sum()):  # one reduction; a non-finite sum is then checked exactly
                return
            count = int((~torch.isfinite(z)).sum())
        if count:
            self._raise_non_finite(count, z.numel())

    def _kernel_forward(self, name: str, p: ref.FSQParams):
        with_indices, check = self.return_indices, self.check_finite
        if name == "cpu":
            prep = self._cpu_prepared()

            def run(z: Tensor):
                codes, idx, bad = _fsq_cpu.forward(z, prep, with_indices=with_indices, check_finite=check)
                if bad:
                    self._raise_non_finite(bad, z.numel())
                return codes, idx, None

            return run

        def run_triton(z: Tensor):
            thr = self._thresholds(z.device)
            table = self._code_table(z.device, torch.float32)
            codes, idx, bad = _fsq_triton.forward(
                z, thr, table, p.basis, with_indices=with_indices, check_finite=check
            )
            if bad:
                self._raise_non_finite(bad, z.numel())
            return codes, idx, None

        return run_triton

    def _quantize_rows(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """Codes ``(R, d)`` in the compute dtype and int32 indices ``(R,)`` of rows ``z``."""
        name = self._choose(z)
        self.last_backend = name
        p = self._params(z.device)
        needs_grad = torch.is_grad_enabled() and z.requires_grad
        if name in ("reference", "torch") and self.check_finite and z.numel():
            self._check_finite(z)
        if name == "reference":
            return ref.forward(z, p, with_indices=self.return_indices)
        if name == "torch":
            if needs_grad:
                return torch_path.STEQuantize.apply(z, p, torch_path.training_forward(p, self.return_indices))
            codes, indices, _ = torch_path.forward(z, p, with_indices=self.return_indices)
            return codes, indices
        run = self._kernel_forward(name, p)
        if needs_grad:
            return torch_path.STEQuantize.apply(z, p, run)
        codes, indices, _ = run(z)
        return codes, indices

    def _maybe_apply_noise(self, codes: Tensor) -> Tensor:
        """Noise dropout of arXiv 2411.19842 in training: the same random draws as upstream."""
        if not self.training or self.noise_dropout == 0.0:
            return codes
        mask = torch.full_like(codes, self.noise_dropout).bernoulli_().bool()
        offset = torch.rand_like(codes) - 0.5
        return torch.where(mask, codes + offset, codes).clamp(-1.0, 1.0)

    def _moves_channels(self, ndim: int, image_rank: int) -> bool:
        if self.channel_first == "auto":
            return ndim >= image_rank
        return bool(self.channel_first)

    def forward(self, x: Tensor) -> QuantizerOutput:
        """Quantize ``x``; see the class docstring for layouts."""
        if not isinstance(x, Tensor):
            raise TypeError(f"expected a torch.Tensor of shape (..., {self.dim}), got {type(x).__name__}")
        if x.dtype not in _FLOAT_DTYPES:
            raise TypeError(
                f"expected a floating-point tensor (float16/bfloat16/float32/float64), got {x.dtype}"
            )
        move = self._moves_channels(x.ndim, 4)
        if move:
            if x.ndim < 2 or x.shape[1] != self.dim:
                raise ValueError(
                    f"expected channel-first input of shape (batch, {self.dim}, ...), got {tuple(x.shape)}"
                )
            x = x.movedim(1, -1)
        elif x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(
                f"expected input of shape (..., {self.dim}) (channel-last), got {tuple(x.shape)}"
            )
        lead = x.shape[:-1]
        z = self.project_in(x.reshape(-1, self.dim))
        rows = z.shape[0]
        z = z.reshape(rows * self.num_codebooks, self.codebook_dim)
        if self.orthogonal_rotation:
            z = z @ self.orthogonal_rot.to(z.dtype)
        force_f32 = self.force_quantization_f32
        context = torch.autocast("cuda", enabled=False) if force_f32 and z.is_cuda else nullcontext()
        with context:
            orig_dtype = z.dtype
            if force_f32 and orig_dtype not in self.allowed_dtypes:
                z = z.float()
            codes, indices = self._quantize_rows(z)
            codes = self._maybe_apply_noise(codes)
            if self.orthogonal_rotation:
                codes = codes @ self.orthogonal_rot.to(codes.dtype).t()
            codes = codes.reshape(rows, self.effective_codebook_dim).to(orig_dtype)
        out = self.project_out(codes).reshape(*lead, self.dim)
        if move:
            out = out.movedim(-1, 1)
        if indices is not None:
            indices = indices.reshape(*lead, self.num_codebooks)
            if not self.keep_num_codebooks_dim:
                indices = indices.squeeze(-1)
        return QuantizerOutput(out, indices, None)

    # -- codes and indices ------------------------------------------------------------------

    def quantize(self, z: Tensor) -> Tensor:
        """Normalized codes of ``z`` (..., codebook_dim), reference arithmetic (upstream's ``quantize``)."""
        self._check_code_shape(z, "z")
        return ref.quantize(z, self._params(z.device))

    def _check_code_shape(self, t: Tensor, what: str) -> None:
        if not isinstance(t, Tensor):
            raise TypeError(f"expected {what} as a torch.Tensor, got {type(t).__name__}")
        if t.ndim < 1 or t.shape[-1] != self.codebook_dim:
            raise ValueError(f"expected {what} of shape (..., {self.codebook_dim}), got {tuple(t.shape)}")

    def _check_indices(self, indices: Tensor) -> None:
        if not isinstance(indices, Tensor):
            raise TypeError(f"expected indices as an integer torch.Tensor, got {type(indices).__name__}")
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise TypeError(f"expected an integer tensor of indices, got {indices.dtype}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(
                f"expected indices in [0, {self.codebook_size}), got values in "
                f"[{int(indices.min())}, {int(indices.max())}]"
            )

    def indices_to_level_indices(self, indices: Tensor) -> Tensor:
        """Per-channel level indices ``(..., codebook_dim)`` (0 .. L-1) of indices ``(...)``."""
        self._check_indices(indices)
        return ref.split_indices(indices.to(torch.int64), self._params(indices.device))

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """int32 indices ``(...)`` of codes ``(..., codebook_dim)`` on the grid (rounded per channel)."""
        self._check_code_shape(codes, "codes")
        if not codes.is_floating_point():
            raise TypeError(f"expected floating-point codes, got {codes.dtype}")
        if codes.dtype in (torch.float16, torch.bfloat16):
            codes = codes.float()
        p = self._params(codes.device)
        level = ref.codes_to_level_indices(codes, p)
        bad = ~((level >= 0) & (level <= (p.levels - 1)))
        if bool(bad.any()):
            raise ValueError(
                f"expected codes on the FSQ grid (each channel in [-1, 1]); got {int(bad.sum())} "
                f"value(s) off the grid or not finite"
            )
        return ref.combine_level_indices(level, p)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Codes of indices, laid out as :meth:`forward` returns them (float32, through ``project_out``)."""
        self._check_indices(indices)
        keep = self.keep_num_codebooks_dim
        if keep and (indices.ndim < 1 or indices.shape[-1] != self.num_codebooks):
            raise ValueError(
                f"expected indices of shape (..., {self.num_codebooks}) (one per codebook), "
                f"got {tuple(indices.shape)}"
            )
        move = self._moves_channels(indices.ndim, 3 + int(keep))
        p = self._params(indices.device)
        codes = ref.level_indices_to_codes(ref.split_indices(indices.to(torch.int64), p), p)
        if self.orthogonal_rotation:
            codes = codes @ self.orthogonal_rot.t()
        if keep:
            codes = codes.flatten(-2)
        codes = self.project_out(codes)
        if move:
            if codes.ndim < 2:
                raise ValueError(f"channel-first decoding needs batched indices, got {tuple(indices.shape)}")
            codes = codes.movedim(-1, 1)
        return codes

    @property
    def implicit_codebook(self) -> Tensor:
        """Every code, ``(codebook_size, codebook_dim)`` float32, in index order."""
        device = self._levels.device
        key = ("implicit", device)
        if key not in self._cache:
            p = self._params(device)
            all_indices = torch.arange(self.codebook_size, device=device)
            self._cache[key] = ref.level_indices_to_codes(ref.split_indices(all_indices, p), p)
        return self._cache[key]  # type: ignore[return-value]

    def extra_repr(self) -> str:
        return (
            f"levels={self.levels}, dim={self.dim}, num_codebooks={self.num_codebooks}, "
            f"codebook_size={self.codebook_size}, preserve_symmetry={self.preserve_symmetry}, "
            f"backend={self.backend!r}"
        )


def _compiling() -> bool:
    """Whether torch.compile is tracing this call (torch >= 2.3 API, older private one before)."""
    check = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    if check is None:  # pragma: no cover - torch < 2.3
        from torch._dynamo import is_compiling as check
    return bool(check())


def _column_params(p: ref.FSQParams) -> ref.FSQParams:
    """Params broadcasting over a trailing levels axis: ``(d, 1)`` instead of ``(d,)``."""
    fields = {name: getattr(p, name) for name in p.__dataclass_fields__ if name != "patterns"}
    return ref.FSQParams(**{k: (v[:, None] if isinstance(v, Tensor) else v) for k, v in fields.items()})


__all__ = ["DEFAULT_CODEBOOK_SIZE", "FSQ", "MAX_CODEBOOK_SIZE"]
