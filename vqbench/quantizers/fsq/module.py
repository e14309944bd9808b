"""vqbench's FSQ module, a drop-in for ``vector_quantize_pytorch.FSQ`` (the package docstring says how).

Upstream's methods run the reference arithmetic as module methods; ``forward``, ``encode`` and the
decoding methods run the paths of :mod:`.paths`: through the custom operators of :mod:`.ops` in
recorded graphs, and directly (:class:`.ops.EagerRunner`) in eager calls.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from typing import NamedTuple

import torch
from torch import Tensor, nn

from . import ops, paths
from .checks import MAX_CODEBOOK_SIZE, check_int, check_levels
from .levels import recommended_levels
from .upstream_methods import UpstreamMethods

DEFAULT_CODEBOOK_SIZE = 2**10
#: Codebooks up to this size keep ``implicit_codebook`` as a buffer, as upstream does for any size.
IMPLICIT_CODEBOOK_LIMIT = 2**20
#: Codebooks above this size index in int64 (upstream's rule); the fused kernels write int32.
INT32_CODEBOOK_LIMIT = 2**31
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_OP_DTYPES = (torch.float32, torch.float64)


class FSQOutput(NamedTuple):
    """What :class:`FSQ` returns: upstream's ``(out, indices)`` pair, with names."""

    codes: Tensor
    indices: Tensor | None


def _eager() -> bool:
    """False while torch.compile/export or torch.jit.trace records the call."""
    return not (torch.compiler.is_compiling() or torch.jit.is_tracing())


class FSQ(UpstreamMethods):
    """Finite Scalar Quantization: each channel bounded and rounded to one of ``L_i`` levels.

    Call: ``out, indices = fsq(z)``. Input ``(b, n, dim)`` (any ``(..., dim)`` with fewer than 4
    axes), or channel-first ``(b, dim, ...)`` when it has 4 or more axes or ``channel_first=True``
    (upstream's rule). ``out`` has the input's shape, layout and dtype (straight-through gradient);
    ``indices`` are int32 (int64 above 2^31 codes) of the input's shape without the channel axis,
    with a trailing ``num_codebooks`` axis when ``keep_num_codebooks_dim``; None when
    ``return_indices=False``.

    Arguments shared with ``vector_quantize_pytorch.FSQ`` mean what they mean there (``scale`` is
    accepted and unused, as upstream). vqbench's own, keyword only, defaults keeping upstream's
    behaviour: ``codebook_size`` (an operating point: the FSQ paper's levels for 2^8 .. 2^16, used
    when ``levels`` is None), ``backend`` (``"auto"`` or one of :attr:`BACKENDS`) and
    ``check_finite`` (raise on NaN/Inf input, off-grid codes and out-of-range indices in eager
    calls; see the package docstring for what happens without it).

    ``implicit_codebook`` is a non-persistent buffer, as upstream's (it follows ``.to(dtype)``),
    for codebooks up to ``IMPLICIT_CODEBOOK_LIMIT`` codes; it is None for larger ones and with
    ``materialize_codebook=False`` (upstream 1.34's argument). Codebooks above 2^31 codes give
    int64 indices, computed in torch (the fused kernels write int32).
    ``last_backend`` names the path that the latest eager call ran.
    """

    BACKENDS: tuple[str, ...] = paths.PATHS

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
        materialize_codebook: bool = True,
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
        levels = check_levels(levels, bool(preserve_symmetry))
        num_codebooks = check_int("num_codebooks", num_codebooks, 1)
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
        self.codebook_size = math.prod(levels)
        self.index_dtype = torch.int64 if self.codebook_size > INT32_CODEBOOK_LIMIT else torch.int32
        if self.index_dtype == torch.int64 and backend not in ("auto", "reference"):
            raise ValueError(
                f"backend {backend!r} writes int32 indices; levels {list(levels)} give "
                f"{self.codebook_size} codes (over 2^31), which index in int64: use backend='auto' "
                "or 'reference'"
            )
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]]), dim=0, dtype=self.index_dtype)
        self.register_buffer("_basis", basis, persistent=False)
        self.scale = scale
        self.preserve_symmetry = bool(preserve_symmetry)
        self.noise_dropout = float(noise_dropout)
        self.codebook_dim = len(levels)
        self.num_codebooks = num_codebooks
        self.effective_codebook_dim = self.codebook_dim * num_codebooks
        self.keep_num_codebooks_dim = bool(keep_num_codebooks_dim)
        self.dim = self.effective_codebook_dim if dim is None else check_int("dim", dim, 1)
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
        if self.return_indices:
            codebook = None
            if materialize_codebook and self.codebook_size <= IMPLICIT_CODEBOOK_LIMIT:
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
        self._runners: dict = {}  # eager calls' path and constants per (device, dtype): ops.EagerRunner

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
        if self._reference(z):
            self._raise_if_non_finite(z)
            codes = self.quantize(z)
            indices = None
            if self.return_indices:
                level = self._scale_and_shift(codes.detach()).round()  # on the grid, or NaN
                indices = self._level_indices_to_indices(level, checked=False)
                indices = indices.masked_fill(paths.non_finite_rows(z.detach()), -1)
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
            self.__dict__["last_backend"] = ops.last_path()
        return codes, (indices if self.return_indices else None)

    def _reference(self, h: Tensor) -> bool:
        """Whether ``h`` is quantized by the reference arithmetic rather than a fused path."""
        if self.backend == "reference" or self.index_dtype == torch.int64:
            return True
        return self.backend == "auto" and h.dtype not in _OP_DTYPES

    def _runner(self, h: Tensor) -> ops.EagerRunner:
        """The eager path and constants for ``h``'s device and dtype (built on first use, then cached)."""
        key = (h.device, h.dtype)
        runner = self._runners.get(key)
        if runner is None:
            runner = ops.eager_runner(
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
            and self.index_dtype == torch.int32
            and ops.direct_call_ok(x)
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
        if self._reference(h):
            self._raise_if_non_finite(h)
            level = self._scale_and_shift(self.quantize(h)).round()
            indices = self._level_indices_to_indices(level, checked=False)
            indices = indices.masked_fill(paths.non_finite_rows(h), -1)
            path = "reference"
        elif eager and ops.direct_call_ok(h):
            runner = self._runner(h)
            indices = paths.run_encode(runner.path, runner.constants, h, self.check_finite)
            path = runner.path
        else:
            indices = torch.ops.vqbench.fsq_encode(
                h, self.levels, self.preserve_symmetry, self.bound_hard_clamp, self.backend,
                self.check_finite and eager,
            )  # fmt: skip
            path = ops.last_path()
        if eager:
            self.__dict__["last_backend"] = path
        if self.keep_num_codebooks_dim:
            return indices.reshape(*lead, self.num_codebooks)
        return indices.reshape(lead)

    # -- codes and indices ----------------------------------------------------------------------

    def _level_indices_to_indices(self, level: Tensor, checked: bool = True) -> Tensor:
        """Index (``index_dtype``) of rounded level indices ``(..., d)``.

        ``checked``: -1 where a channel is off the grid or NaN; else the caller marks such rows.
        """
        if checked:
            in_range = (level >= 0) & (level <= self._levels - 1)
            level = torch.where(in_range, level, 0.0)
        exact = 2**24 if level.dtype == torch.float32 else 2**53
        if self.codebook_size <= exact:  # a float sum, exact here
            total = (level * self._basis.to(level.dtype)).sum(dim=-1).to(self.index_dtype)
        else:
            wide = level.nan_to_num(0.0).to(torch.int64)
            total = (wide * self._basis.to(torch.int64)).sum(dim=-1).to(self.index_dtype)
        return torch.where(in_range.all(dim=-1), total, -1) if checked else total

    def codes_to_indices(self, zhat: Tensor) -> Tensor:
        """Indices ``(...)`` of codes ``(..., codebook_dim)``; -1 for codes off the grid or NaN."""
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
        if self.backend == "reference" or self.index_dtype == torch.int64:
            valid = (indices >= 0) & (indices < self.codebook_size)
            return torch.where(valid.unsqueeze(-1), self._indices_to_codes(indices), float("nan"))
        if _eager() and ops.direct_call_ok(indices):  # the kernels without the operator dispatcher
            c = self._constants(indices.device)
            return paths.run_decode(c, indices, self.codebook_size)
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
        return paths.available_paths(device)

    def _constants(self, device: torch.device) -> paths.Constants:
        return paths.constants(self.levels, self.preserve_symmetry, self.bound_hard_clamp, device)

    def extra_repr(self) -> str:
        return (
            f"levels={self.levels}, dim={self.dim}, num_codebooks={self.num_codebooks}, "
            f"codebook_size={self.codebook_size}, preserve_symmetry={self.preserve_symmetry}, "
            f"backend={self.backend!r}"
        )


def _describe(t: object) -> str:
    return f"{t.dtype} tensor" if isinstance(t, Tensor) else type(t).__name__


def kernel_constants(fsq: FSQ, device: torch.device | str = "cpu") -> paths.Constants:
    """The constants of ``fsq``'s configuration that its fast paths use on ``device``.

    ``.params`` (the reference's per-channel constants), ``.thresholds()`` (the kernels' decision
    boundaries ``(d, max L - 1)``), ``.code_table(dtype)`` (codes per channel and level) and
    ``.cpu_prepared()`` (the C kernel's layout); built on first use and shared.
    """
    return fsq._constants(torch.device(device))


__all__ = [
    "DEFAULT_CODEBOOK_SIZE",
    "FSQ",
    "FSQOutput",
    "IMPLICIT_CODEBOOK_LIMIT",
    "MAX_CODEBOOK_SIZE",
    "kernel_constants",
]
