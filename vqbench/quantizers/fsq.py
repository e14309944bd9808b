"""vqbench's Finite Scalar Quantization (arXiv 2309.15505): a drop-in for ``vector_quantize_pytorch.FSQ``.

``from vqbench import FSQ`` replaces ``from vector_quantize_pytorch import FSQ`` (1.32) with no other
change: the same constructor, call ``(out, indices)``, layouts (input with 4 or more axes, or any
input with ``channel_first=True``, is ``(b, d, ...)``), attributes, buffers, ``state_dict`` keys and
methods, and the same codes, indices and gradients bit for bit. What differs is speed (fused paths,
below), whole-graph use, and defects fixed: indices are summed in integers (upstream's float32 sum
is off above 2^24 codes), and NaN/Inf input never becomes a valid index.

Paths (``backend=``, ``FSQ.BACKENDS``): ``"reference"`` runs upstream's arithmetic as module methods
(plain tensor operations, what ``torch.compile`` fuses); ``"torch"``, ``"cpu"`` (a C kernel) and
``"triton"`` run inside the custom operator ``torch.ops.vqbench.fsq_quantize`` (``_fsq_ops``), so
eager, compiled (``fullgraph=True``), exported and traced models run the fused kernels. ``"auto"``
(default) lets the operator pick the fastest path that can run, per call. Eager calls skip the
operators' dispatch: they call the same kernels through a lean ``torch.autograd.Function`` on the
input's own shape, with the path and constants cached per device and dtype (the fixed cost of a
call: 16 vectors, training step, about 70 us of CPU time where the operators took 160 us);
graphs that torch.compile, export or ``make_fx`` record still see the operators. ``encode`` gives
the indices alone, and its kernels write no codes.

Non-finite input, without a host synchronization or a graph break: a row (token) with any NaN/Inf
gets index -1, outside the codebook; its codes stay upstream's (NaN for NaN, the saturated level for
+-Inf); ``indices_to_codes`` turns indices outside ``[0, codebook_size)`` into NaN codes, and
``codes_to_indices`` turns codes off the grid into -1. Cost, measured on 2 CPU cores with 1M
vectors, interleaved against the previous release (which raised on NaN/Inf after a sum check):
none on the C kernel path (the kernel marks rows in its own pass); on the torch path the CPU
proves all rows finite with one sum (as fast as before: 1.03x and 1.14x), and elsewhere marks
rows with one matrix-vector product, in graph (``_fsq_ops.non_finite_rows``: 17-19% of the torch
path's time). ``check_finite=True`` raises ``ValueError`` instead, in eager calls only (one host
synchronization on CUDA); compiled and traced graphs keep the in-graph marking.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from . import _fsq_ops
from . import _fsq_reference as ref
from ._adapters import FSQAdapter
from .levels import recommended_levels

DEFAULT_CODEBOOK_SIZE = 2**10
MAX_CODEBOOK_SIZE = 2**31  # indices are int32, as upstream's
#: Codebooks up to this size keep ``implicit_codebook`` as a buffer, as upstream does for any size.
IMPLICIT_CODEBOOK_LIMIT = 2**20
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_OP_DTYPES = (torch.float32, torch.float64)


class FSQOutput(NamedTuple):
    """What :class:`FSQ` returns: upstream's ``(out, indices)`` pair, with names."""

    codes: Tensor
    indices: Tensor | None


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


def _eager() -> bool:
    """False while torch.compile/export or torch.jit.trace records the call."""
    return not (torch.compiler.is_compiling() or torch.jit.is_tracing())


class FSQ(nn.Module):
    """Finite Scalar Quantization: each channel bounded and rounded to one of ``L_i`` levels.

    Call: ``out, indices = fsq(z)``. Input ``(b, n, dim)`` (any ``(..., dim)`` with fewer than 4
    axes), or channel-first ``(b, dim, ...)`` when it has 4 or more axes or ``channel_first=True``
    (upstream's rule). ``out`` has the input's shape, layout and dtype (straight-through gradient);
    ``indices`` are int32 of the input's shape without the channel axis, with a trailing
    ``num_codebooks`` axis when ``keep_num_codebooks_dim``; None when ``return_indices=False``.

    Arguments shared with ``vector_quantize_pytorch.FSQ`` mean what they mean there (``scale`` is
    accepted and unused, as upstream). vqbench's own, keyword only, defaults keeping upstream's
    behaviour: ``codebook_size`` (an operating point: the FSQ paper's levels for 2^8 .. 2^16, used
    when ``levels`` is None), ``backend`` (``"auto"`` or one of :attr:`BACKENDS`) and
    ``check_finite`` (raise on NaN/Inf input, off-grid codes and out-of-range indices in eager
    calls; see the module docstring for what happens without it).

    ``implicit_codebook`` is a non-persistent buffer, as upstream's (it follows ``.to(dtype)``),
    for codebooks up to ``IMPLICIT_CODEBOOK_LIMIT`` codes; larger ones do not materialize it.
    ``last_backend`` names the path that the latest eager call ran.
    """

    BACKENDS: tuple[str, ...] = _fsq_ops.PATHS

    def __init__(
        self,
        levels: Sequence[int] | None = None,
        dim: int | None = None,
        num_codebooks: int = 1,
        keep_num_codebooks_dim: bool | None = None,
        scale: float | None = None,
        allowed_dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64),
        channel_first: bool = False,
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
        check_finite: bool = False,
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
        if not isinstance(channel_first, (bool, int)) or channel_first not in (0, 1):
            raise ValueError(f"channel_first must be True or False, got {channel_first!r}")
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
        self.channel_first = bool(channel_first)
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
        if self.return_indices and self.codebook_size <= IMPLICIT_CODEBOOK_LIMIT:
            codebook = self._indices_to_codes(torch.arange(self.codebook_size))
            self.register_buffer("implicit_codebook", codebook, persistent=False)
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
        self._runners: dict = {}  # eager calls' path and constants per (device, dtype): _fsq_ops.EagerRunner

    # -- upstream's methods: the reference arithmetic ------------------------------------------

    def bound(self, z: Tensor, eps: float = 1e-3, hard_clamp: bool = False) -> Tensor:
        """Bound ``z`` (..., d) and round it (straight through) to normalized codes; upstream's ``bound``."""
        half_l = (self._levels - 1) * (1 + eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        ratio = offset / half_l
        if hard_clamp:
            bounded = torch.clamp(z + ratio, min=-1.0, max=1.0) * half_l - offset
        else:
            bounded = torch.tanh(z + torch.atanh(ratio)) * half_l - offset
        rounded = bounded + (bounded.round() - bounded).detach()
        return rounded / (self._levels // 2)

    def symmetry_preserving_bound(self, z: Tensor, hard_clamp: bool = False) -> Tensor:
        """``2 / (L - 1) * floor((L - 1) (tanh(z) + 1) / 2 + 0.5) - 1`` (arXiv 2411.19842, section 3.2)."""
        levels_minus_1 = self._levels - 1
        scale = 2.0 / levels_minus_1
        squashed = torch.clamp(z, min=-1.0, max=1.0) if hard_clamp else torch.tanh(z)
        bracket = (levels_minus_1 * (squashed + 1) / 2.0) + 0.5
        bracket = bracket + (bracket.floor() - bracket).detach()
        return scale * bracket - 1.0

    def quantize(self, z: Tensor) -> Tensor:
        """Normalized codes of ``z`` (..., codebook_dim), same shape; upstream's ``quantize``."""
        if self.preserve_symmetry:
            return self.symmetry_preserving_bound(z, hard_clamp=self.bound_hard_clamp)
        return self.bound(z, hard_clamp=self.bound_hard_clamp)

    def maybe_apply_noise(self, bounded_z: Tensor) -> Tensor:
        """Noise dropout of arXiv 2411.19842 in training: the same random draws as upstream."""
        if not self.training or self.noise_dropout == 0.0:
            return bounded_z
        mask = torch.full_like(bounded_z, self.noise_dropout).bernoulli_().bool()
        offset = torch.rand_like(bounded_z) - 0.5
        return torch.where(mask, bounded_z + offset, bounded_z).clamp(-1.0, 1.0)

    def _scale_and_shift(self, zhat_normalized: Tensor) -> Tensor:
        """Normalized codes to per-channel level indices (as floats, not rounded)."""
        if self.preserve_symmetry:
            return (zhat_normalized + 1.0) / (2.0 / (self._levels - 1))
        half_width = self._levels // 2
        return (zhat_normalized * half_width) + half_width

    def _scale_and_shift_inverse(self, zhat: Tensor) -> Tensor:
        """Per-channel level indices to normalized codes."""
        if self.preserve_symmetry:
            return zhat * (2.0 / (self._levels - 1)) - 1.0
        half_width = self._levels // 2
        return (zhat - half_width) / half_width

    def _indices_to_codes(self, indices: Tensor) -> Tensor:
        """Normalized codes ``(..., codebook_dim)`` of indices ``(...)``: upstream's, unchecked."""
        return self._scale_and_shift_inverse(self.indices_to_level_indices(indices))

    def indices_to_level_indices(self, indices: Tensor) -> Tensor:
        """Per-channel level indices ``(..., codebook_dim)`` (0 .. L-1) of indices ``(...)``."""
        return (indices.unsqueeze(-1) // self._basis) % self._levels

    # -- quantization ---------------------------------------------------------------------------

    def _check_input(self, z: Tensor) -> bool:
        """Raise on a bad input; return whether its channels come first."""
        if not isinstance(z, Tensor):
            raise TypeError(f"expected a torch.Tensor of shape (b, n, {self.dim}), got {type(z).__name__}")
        if z.dtype not in _FLOAT_DTYPES:
            raise TypeError(
                f"expected a floating-point tensor (float16/bfloat16/float32/float64), got {z.dtype}"
            )
        move = z.ndim >= 4 or self.channel_first
        if torch.jit.is_tracing():
            return move  # shapes are traced values there; the checks ran on the example input
        if move:
            if z.ndim < 2 or z.shape[1] != self.dim:
                raise ValueError(
                    f"expected channel-first input of shape (b, {self.dim}, ...) (input with 4 or more "
                    f"axes, or channel_first=True), got {tuple(z.shape)}"
                )
        elif z.ndim < 1 or z.shape[-1] != self.dim:
            raise ValueError(f"expected input of shape (b, n, {self.dim}), got {tuple(z.shape)}")
        return move

    def _raise_if_non_finite(self, z: Tensor) -> None:
        if self.check_finite and _eager() and z.numel():
            with torch.no_grad():
                count = int((~torch.isfinite(z)).sum())
            if count:
                raise ValueError(
                    f"expected finite input to FSQ, got {count} NaN/Inf value(s) among {z.numel()}; "
                    "pass check_finite=False to skip this check (such rows then get index -1)"
                )

    def _quantize_rows(self, z: Tensor, eager: bool) -> tuple[Tensor, Tensor | None]:
        """Codes ``(R, d)`` in the compute dtype and int32 indices ``(R,)`` of rows ``z``."""
        reference = self.backend == "reference" or (self.backend == "auto" and z.dtype not in _OP_DTYPES)
        if reference:
            self._raise_if_non_finite(z)
            codes = self.quantize(z)
            indices = None
            if self.return_indices:
                level = self._scale_and_shift(codes.detach()).round()  # on the grid, or NaN
                indices = self._level_indices_to_indices(level, checked=False)
                indices = indices.masked_fill(_fsq_ops.non_finite_rows(z.detach()), -1)
            if eager:
                self.__dict__["last_backend"] = "reference"
            return codes, indices
        codes, indices = torch.ops.vqbench.fsq_quantize(
            z,
            self.levels,
            self.preserve_symmetry,
            self.bound_hard_clamp,
            self.return_indices,
            self.backend,
            self.check_finite and eager,
        )
        if eager:
            self.__dict__["last_backend"] = _fsq_ops.last_path()
        return codes, (indices if self.return_indices else None)

    def _runner(self, h: Tensor) -> _fsq_ops.EagerRunner:
        """The eager path and constants for ``h``'s device and dtype (built on first use, then cached)."""
        key = (h.device, h.dtype)
        runner = self._runners.get(key)
        if runner is None:
            runner = _fsq_ops.eager_runner(
                h,
                self.levels,
                self.preserve_symmetry,
                self.bound_hard_clamp,
                self.return_indices,
                self.backend,
            )
            self._runners[key] = runner
        return runner

    def forward(self, z: Tensor) -> FSQOutput:
        """Quantize ``z``: ``(out, indices)``; see the class docstring for layouts."""
        move = self._check_input(z)
        eager = _eager()
        x = z.movedim(1, -1) if move else z
        if (
            eager
            and not self.has_projections
            and self.num_codebooks == 1
            and not self.orthogonal_rotation
            and not (self.training and self.noise_dropout > 0.0)
            and self.backend != "reference"
            and _fsq_ops.direct_call_ok(x)
        ):
            # an eager call: the kernels without the operator dispatcher, on x's own shape (no views
            # with backward nodes), path and constants cached per device and dtype
            orig_dtype = x.dtype
            h = x.float() if self.force_quantization_f32 and orig_dtype not in self.allowed_dtypes else x
            if h.dtype in _OP_DTYPES or self.backend != "auto":
                runner = self._runner(h)
                codes, indices = runner(h, self.check_finite)
                self.__dict__["last_backend"] = runner.path
                if codes.dtype != orig_dtype:
                    codes = codes.to(orig_dtype)
                if move:
                    codes = codes.movedim(-1, 1)
                if indices is not None and self.keep_num_codebooks_dim:
                    indices = indices.unsqueeze(-1)
                return FSQOutput(codes, indices)
        lead = x.shape[:-1]
        h = x.reshape(-1, self.dim)
        if self.has_projections:
            h = self.project_in(h).reshape(-1, self.codebook_dim)  # one row per token and codebook
        elif self.num_codebooks > 1:
            h = h.reshape(-1, self.codebook_dim)
        if self.orthogonal_rotation:
            h = h @ self.orthogonal_rot.to(h.dtype)
        force_f32 = self.force_quantization_f32
        # autocast off around the quantizer as upstream, where it could change anything: only its
        # matrix products (the rotation) are autocast, and only while autocast is on
        context = (
            torch.autocast("cuda", enabled=False)
            if force_f32 and h.is_cuda and self.orthogonal_rotation and torch.is_autocast_enabled("cuda")
            else nullcontext()
        )
        with context:
            orig_dtype = h.dtype
            if force_f32 and orig_dtype not in self.allowed_dtypes:
                h = h.float()
            codes, indices = self._quantize_rows(h, eager)
            if self.training and self.noise_dropout > 0.0:
                codes = self.maybe_apply_noise(codes)
            if self.orthogonal_rotation:
                codes = codes @ self.orthogonal_rot.to(codes.dtype).t()
            if self.num_codebooks > 1:
                codes = codes.reshape(-1, self.effective_codebook_dim)
            if codes.dtype != orig_dtype:
                codes = codes.to(orig_dtype)
        if self.has_projections:
            codes = self.project_out(codes)
        out = codes.reshape(*lead, self.dim)
        if move:
            out = out.movedim(-1, 1)
        if indices is not None:
            indices = (
                indices.reshape(*lead, self.num_codebooks)
                if self.keep_num_codebooks_dim
                else indices.reshape(lead)
            )
        return FSQOutput(out, indices)

    def encode(self, z: Tensor) -> Tensor:
        """The indices of :meth:`forward` alone (same layouts), without computing or writing codes.

        vqbench's own method (upstream has none): a tokenizer's encode step. Indices are not
        differentiable; they follow ``forward``'s for the same input (before noise dropout).
        """
        move = self._check_input(z)
        eager = _eager()
        x = z.movedim(1, -1) if move else z
        lead = x.shape[:-1]
        h = x.reshape(-1, self.dim)
        if self.has_projections:
            h = self.project_in(h)
        h = h.reshape(-1, self.codebook_dim)
        if self.orthogonal_rotation:
            h = h @ self.orthogonal_rot.to(h.dtype)
        if self.force_quantization_f32 and h.dtype not in self.allowed_dtypes:
            h = h.float()
        h = h.detach()
        if self.backend == "reference" or (self.backend == "auto" and h.dtype not in _OP_DTYPES):
            self._raise_if_non_finite(h)
            level = self._scale_and_shift(self.quantize(h)).round()
            indices = self._level_indices_to_indices(level, checked=False)
            indices = indices.masked_fill(_fsq_ops.non_finite_rows(h), -1)
            path = "reference"
        elif eager and _fsq_ops.direct_call_ok(h):
            runner = self._runner(h)
            indices = _fsq_ops.run_encode(runner.path, runner.constants, h, self.check_finite)
            path = runner.path
        else:
            indices = torch.ops.vqbench.fsq_encode(
                h, self.levels, self.preserve_symmetry, self.bound_hard_clamp, self.backend,
                self.check_finite and eager,
            )  # fmt: skip
            path = _fsq_ops.last_path()
        if eager:
            self.__dict__["last_backend"] = path
        if self.keep_num_codebooks_dim:
            return indices.reshape(*lead, self.num_codebooks)
        return indices.reshape(lead)

    # -- codes and indices ----------------------------------------------------------------------

    def _level_indices_to_indices(self, level: Tensor, checked: bool = True) -> Tensor:
        """int32 index of rounded level indices ``(..., d)``.

        ``checked``: -1 where a channel is off the grid or NaN; else the caller marks such rows.
        """
        if checked:
            in_range = (level >= 0) & (level <= self._levels - 1)
            level = torch.where(in_range, level, 0.0)
        exact = 2**24 if level.dtype == torch.float32 else 2**53
        if self.codebook_size <= exact:  # upstream's float sum, exact here
            total = (level * self._basis.to(level.dtype)).sum(dim=-1).to(torch.int32)
        else:
            wide = level.nan_to_num(0.0).to(torch.int64)
            total = (wide * self._basis.to(torch.int64)).sum(dim=-1).to(torch.int32)
        return torch.where(in_range.all(dim=-1), total, -1) if checked else total

    def codes_to_indices(self, zhat: Tensor) -> Tensor:
        """int32 indices ``(...)`` of codes ``(..., codebook_dim)``; -1 for codes off the grid or NaN."""
        if not isinstance(zhat, Tensor) or not zhat.is_floating_point():
            raise TypeError(f"expected floating-point codes as a torch.Tensor, got {_describe(zhat)}")
        if not torch.jit.is_tracing() and (zhat.ndim < 1 or zhat.shape[-1] != self.codebook_dim):
            raise ValueError(f"expected codes of shape (..., {self.codebook_dim}), got {tuple(zhat.shape)}")
        if zhat.dtype not in _OP_DTYPES:
            zhat = zhat.float()
        indices = self._level_indices_to_indices(self._scale_and_shift(zhat).round())
        if self.check_finite and _eager():
            bad = int((indices < 0).sum())
            if bad:
                raise ValueError(
                    f"expected codes on the FSQ grid (each channel in [-1, 1]); got {bad} code(s) "
                    "off the grid or not finite"
                )
        return indices

    def _decode(self, indices: Tensor) -> Tensor:
        """float32 codes ``(..., codebook_dim)``; NaN for indices outside ``[0, codebook_size)``."""
        if self.check_finite and _eager() and indices.numel():
            low, high = int(indices.min()), int(indices.max())
            if low < 0 or high >= self.codebook_size:
                raise ValueError(
                    f"expected indices in [0, {self.codebook_size}), got values in [{low}, {high}]"
                )
        if self.backend == "reference":
            valid = (indices >= 0) & (indices < self.codebook_size)
            return torch.where(valid.unsqueeze(-1), self._indices_to_codes(indices), float("nan"))
        if _eager() and _fsq_ops.direct_call_ok(indices):  # the kernels without the operator dispatcher
            c = self._constants(indices.device)
            return _fsq_ops.run_decode(c, indices, self.codebook_size)
        return torch.ops.vqbench.fsq_decode(indices, self.levels, self.preserve_symmetry)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Codes of indices, laid out as :meth:`forward` returns them (float32, through ``project_out``).

        Indices with 3 or more axes (4 with ``keep_num_codebooks_dim``), or any with
        ``channel_first=True``, decode channel-first ``(b, dim, ...)``, as upstream.
        """
        if not isinstance(indices, Tensor) or indices.is_floating_point() or indices.is_complex():
            raise TypeError(f"expected an integer tensor of indices, got {_describe(indices)}")
        if indices.dtype == torch.bool:
            raise TypeError(f"expected an integer tensor of indices, got {indices.dtype}")
        keep = self.keep_num_codebooks_dim
        if (
            keep
            and not torch.jit.is_tracing()
            and (indices.ndim < 1 or indices.shape[-1] != self.num_codebooks)
        ):
            raise ValueError(
                f"expected indices of shape (..., {self.num_codebooks}) (one per codebook), "
                f"got {tuple(indices.shape)}"
            )
        move = indices.ndim >= 3 + int(keep) or self.channel_first
        if move and indices.ndim < 1 + int(keep):
            raise ValueError(f"channel-first decoding needs batched indices, got {tuple(indices.shape)}")
        codes = self._decode(indices)
        if self.orthogonal_rotation:
            codes = codes @ self.orthogonal_rot.to(codes.dtype).t()
        if keep:
            codes = codes.flatten(-2)
        codes = self.project_out(codes)
        if move:
            codes = codes.movedim(-1, 1)
        return codes

    # -- paths ----------------------------------------------------------------------------------

    @classmethod
    def available_backends(cls, device: torch.device | str = "cpu") -> list[str]:
        """The paths that can run float32 input on ``device`` here."""
        return _fsq_ops.available_paths(device)

    def _constants(self, device: torch.device) -> _fsq_ops.Constants:
        return _fsq_ops.constants(self.levels, self.preserve_symmetry, self.bound_hard_clamp, device)

    def _params(self, device: torch.device) -> ref.FSQParams:
        """The reference's per-channel constants on ``device``."""
        return self._constants(device).params

    def _thresholds(self, device: torch.device) -> Tensor:
        """The kernels' decision boundaries ``(d, max L - 1)`` on ``device``."""
        return self._constants(device).thresholds()

    def _code_table(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Codes per channel and level ``(d, max L)`` in ``dtype``."""
        return self._constants(device).code_table(dtype)

    def _cpu_prepared(self):
        """The C kernel's constants for this configuration."""
        return self._constants(torch.device("cpu")).cpu_prepared()

    def extra_repr(self) -> str:
        return (
            f"levels={self.levels}, dim={self.dim}, num_codebooks={self.num_codebooks}, "
            f"codebook_size={self.codebook_size}, preserve_symmetry={self.preserve_symmetry}, "
            f"backend={self.backend!r}"
        )


def _describe(t: object) -> str:
    return f"{t.dtype} tensor" if isinstance(t, Tensor) else type(t).__name__


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
fsq_quantizer.BACKENDS = dict(_fsq_ops.PATH_DEVICES)


__all__ = [
    "DEFAULT_CODEBOOK_SIZE",
    "FSQ",
    "FSQOutput",
    "MAX_CODEBOOK_SIZE",
    "VqbenchFSQAdapter",
    "fsq_quantizer",
]
