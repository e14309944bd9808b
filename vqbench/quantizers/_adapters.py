"""Protocol adapters around vector-quantize-pytorch modules.

Each adapter takes channel-last input ``(..., dim)`` with any number of leading axes, flattens it to
the ``(1, tokens, dim)`` layout that the upstream classes handle without guessing (several of them
treat ``ndim >= 4`` as a channel-first image), and translates the upstream return (tuples,
namedtuples, per-level loss vectors) into one ``QuantizerOutput``.

Quantization runs in the dtype of the adapter's parameters (float32 unless the module was
converted); codes come back in the input's dtype. In eval mode the loss is detached.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from einops import pack, rearrange, unpack
from torch import Tensor, nn

from ._protocol import Quantizer, QuantizerOutput


class UpstreamQuantizer(Quantizer):
    """Base adapter: flattening, dtype handling and loss translation around an upstream module.

    Subclasses implement ``_quantize(x: (N, dim)) -> (codes (N, dim), indices (N,) | (N, C), loss)``
    and ``_decode(indices (N,) | (N, C)) -> codes (N, dim)``.
    """

    def __init__(
        self,
        inner: nn.Module,
        *,
        dim: int,
        codebook_size: int,
        num_codebooks: int = 1,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.inner = inner
        self.dim = int(dim)
        self.codebook_size = int(codebook_size)
        self.num_codebooks = int(num_codebooks)
        # the resolved upstream configuration, for reports and reproducibility
        self.config: dict[str, Any] = dict(config or {})
        # follows .to()/.double()/.half(): the dtype that quantization runs in
        self.register_buffer("_dtype_probe", torch.empty(0), persistent=False)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, codebook_size={self.codebook_size}, num_codebooks={self.num_codebooks}"

    # -- protocol -------------------------------------------------------------------------------

    def forward(self, x: Tensor) -> QuantizerOutput:
        self.check_input(x)
        flat, shape = pack([x], "* d")
        if flat.shape[0] == 0:
            return self._empty_output(x, shape)
        codes, indices, loss = self._quantize(flat.to(self._dtype_probe.dtype))
        [codes] = unpack(codes.to(x.dtype), shape, "* d")
        [indices] = unpack(indices, shape, "* c" if self.num_codebooks > 1 else "*")
        return QuantizerOutput(codes, indices, self._scalar_loss(loss))

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Codes ``(..., dim)`` for indices shaped like ``forward``'s (dtype: the module's)."""
        self._check_indices(indices)
        flat, shape = pack([indices], "* c" if self.num_codebooks > 1 else "*")
        [codes] = unpack(self._decode(flat), shape, "* d")
        return codes

    def _empty_output(self, x: Tensor, shape: list) -> QuantizerOutput:
        """No tokens: empty codes and indices and a zero loss (upstream gives NaN means or fails)."""
        training = self.training
        try:
            self.eval()  # a probe token must not update EMA codebooks
            with torch.no_grad():
                _, indices, loss = self._quantize(x.new_zeros(1, self.dim, dtype=self._dtype_probe.dtype))
        finally:
            self.train(training)
        [indices] = unpack(indices[:0], shape, "* c" if self.num_codebooks > 1 else "*")
        zero = None if loss is None else torch.zeros((), device=x.device)
        return QuantizerOutput(x.clone(), indices, zero)

    # -- hooks ----------------------------------------------------------------------------------

    def _quantize(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:  # pragma: no cover
        raise NotImplementedError

    def _decode(self, indices: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------------

    def _scalar_loss(self, loss: Any) -> Tensor | None:
        if loss is None:
            return None
        if not isinstance(loss, Tensor):
            loss = torch.as_tensor(loss, dtype=torch.float32, device=self._dtype_probe.device)
        if loss.ndim:
            loss = loss.sum()  # per-level losses of residual quantizers add up
        return loss if self.training else loss.detach()

    def _check_indices(self, indices: Tensor) -> None:
        if not isinstance(indices, Tensor):
            raise TypeError(f"expected indices as a torch.Tensor, got {type(indices).__name__}")
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise TypeError(f"expected an integer tensor of indices, got dtype {indices.dtype}")
        if self.num_codebooks > 1 and (indices.ndim < 1 or indices.shape[-1] != self.num_codebooks):
            raise ValueError(
                f"expected indices of shape (..., {self.num_codebooks}) (one per codebook), "
                f"got {tuple(indices.shape)}"
            )


@contextmanager
def _init_on_training_batches(module: nn.Module, training: bool) -> Iterator[None]:
    """Defer upstream's data-dependent codebook init (``kmeans_init``) to the first training batch.

    Upstream initialises on the first forward in any mode, so an eval pass before training (the
    reconstruction engine's untrained baseline, an empty-input probe) would fit the codebook to
    evaluation data. Outside training, codebooks still waiting for their init are marked as done
    for the call (their codes are zeros until then) and marked as waiting again afterwards.
    """
    waiting = []
    if not training:
        for sub in module.modules():
            flag = getattr(sub, "initted", None)
            if isinstance(flag, Tensor) and not bool(flag):
                waiting.append(flag)
                flag.fill_(True)
    try:
        yield
    finally:
        for flag in waiting:
            flag.fill_(False)


def upstream_reads_dead_code_ratio() -> bool:
    """Whether the installed vector-quantize-pytorch (1.34 on) states dead codes as a ratio."""
    from vector_quantize_pytorch import VectorQuantize

    return "dead_code_threshold_ratio" in inspect.signature(VectorQuantize.__init__).parameters


def set_dead_code_threshold(module: nn.Module, threshold: float, tokens: int, reset: float) -> None:
    """Restart the codes of every VQ codebook in ``module`` whose EMA count per batch is below
    ``threshold``, with ``reset`` (the configured count) as a restarted code's count.

    vector-quantize-pytorch 1.32 reads both as counts (``threshold_ema_dead_code``; the reset count
    is fixed when it is built). 1.34 reads ratios of the mean EMA count, which after this batch's
    update is ``decay * mean + (1 - decay) * tokens / codebook_size``: the ratios are set from it, as
    tensors (no host synchronization), so that both releases apply the same counts.
    """
    for book in module.modules():
        if hasattr(book, "dead_code_threshold_ratio") and hasattr(book, "cluster_size"):
            expected = book.decay * book.cluster_size.mean() + (1 - book.decay) * tokens / book.codebook_size
            book.dead_code_threshold_ratio = threshold / expected
            book.reset_cluster_size_ratio = reset / expected
        elif hasattr(book, "threshold_ema_dead_code") and hasattr(book, "cluster_size"):
            book.threshold_ema_dead_code = threshold


def _batched(x: Tensor) -> Tensor:
    """(N, ...) -> (1, N, ...): the sequence layout every upstream class accepts."""
    return x.unsqueeze(0)


class FSQAdapter(UpstreamQuantizer):
    """``vector_quantize_pytorch.FSQ``, or ``vqbench.FSQ`` (its drop-in): ``(codes, indices)``, no loss."""

    def _quantize(self, x):
        codes, indices = self.inner(_batched(x))
        return codes[0], indices[0], None

    def _decode(self, indices):
        return self.inner.indices_to_codes(_batched(indices))[0]


class VectorQuantizeAdapter(UpstreamQuantizer):
    """``vector_quantize_pytorch.VectorQuantize``: returns ``(codes, indices, loss)``.

    Upstream applies the straight-through estimator only when the *raw* input requires grad, so
    with projections and an input that does not, ``project_in`` would get no gradient from the
    codes; the adapter makes such an input a grad-requiring leaf. Decoding reads the codebook
    buffer directly (upstream's ``get_output_from_indices`` neither merges shared multi-head codes
    nor applies the affine codebook parameters that its forward uses). With ``kmeans_init=True`` the
    codebook is fitted to the first *training* batch (see ``_init_on_training_batches``).
    """

    def __init__(
        self,
        inner: nn.Module,
        *,
        dead_code_count: float = 0.0,
        dead_code_share: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(inner, **kwargs)
        self.dead_code_share = dead_code_share
        self._dead_code_count = float(dead_code_count or 0)
        self._seeded = False
        self.dead_code_threshold: float | None = None  # the count applied at the last training batch

    def _scale_dead_code_threshold(self, tokens: int) -> None:
        """With ``dead_code_share``: a code is dead below that share of a uniform code's count per batch.

        The threshold is ``min(threshold_ema_dead_code, share x tokens per batch / codebook size)``,
        so that it stays below a uniformly used code's count when the codebook outgrows the batch
        (a fixed count of 2 with fewer tokens per batch than codes resets live codes at every step).
        The first training batch keeps the full count: every code starts with a count of 1, so that
        batch re-seeds the codebook from data, as upstream does.
        """
        if not self._dead_code_count:
            return
        threshold = self._dead_code_count
        if self._seeded and self.dead_code_share:
            threshold = min(threshold, self.dead_code_share * tokens / self.codebook_size)
        self._seeded = True
        self.dead_code_threshold = threshold
        set_dead_code_threshold(self.inner, threshold, tokens, self._dead_code_count)

    def _quantize(self, x):
        if self.training and torch.is_grad_enabled() and not x.requires_grad and self.inner.has_projections:
            x = x.detach().requires_grad_()
        if self.training:
            self._scale_dead_code_threshold(x.shape[0])
        with _init_on_training_batches(self.inner, self.training):
            codes, indices, loss = self.inner(_batched(x))[:3]
        return codes[0], indices[0], loss

    def _decode(self, indices):
        book = self.inner._codebook
        embed = book.embed  # (books, size, codebook_dim)
        if book.affine_param:
            codebook_std = book.codebook_variance.clamp(min=1e-5).sqrt()
            batch_std = book.batch_variance.clamp(min=1e-5).sqrt()
            embed = (embed - book.codebook_mean) * (batch_std / codebook_std) + book.batch_mean
        if indices.ndim == 1:
            codes = embed[0, indices]
        elif embed.shape[0] == 1:  # several heads, one shared codebook
            codes = rearrange(embed[0, indices], "n h d -> n (h d)")
        else:  # one codebook per head
            heads = torch.arange(embed.shape[0], device=indices.device)
            codes = rearrange(embed[heads, indices], "n h d -> n (h d)")
        return self.inner.project_out(codes)


class LFQAdapter(UpstreamQuantizer):
    """``vector_quantize_pytorch.LFQ`` (and BSQ with ``spherical=True``): a ``Return`` namedtuple."""

    def __init__(self, inner: nn.Module, *, inv_temperature: float = 100.0, **kwargs: Any) -> None:
        super().__init__(inner, **kwargs)
        self.inv_temperature = float(inv_temperature)

    def _quantize(self, x):
        out = self.inner(_batched(x), inv_temperature=self.inv_temperature)
        return out.quantized[0], out.indices[0], out.entropy_aux_loss

    def _decode(self, indices):
        return self.inner.indices_to_codes(_batched(indices))[0]


class ResidualAdapter(UpstreamQuantizer):
    """``ResidualVQ`` / ``ResidualLFQ`` / ``ResidualFSQ``: indices ``(..., levels)``, per-level losses.

    With a single level the trailing axis is dropped, as the protocol asks. Residual VQ with
    ``kmeans_init=True`` fits each level to the first *training* batch, as ``VectorQuantizeAdapter``.
    """

    def __init__(self, inner: nn.Module, *, dead_code_count: float = 0.0, **kwargs: Any) -> None:
        super().__init__(inner, **kwargs)
        self._dead_code_count = float(dead_code_count or 0)

    def _quantize(self, x):
        if self.training and self._dead_code_count:
            set_dead_code_threshold(self.inner, self._dead_code_count, x.shape[0], self._dead_code_count)
        with _init_on_training_batches(self.inner, self.training):
            out = self.inner(_batched(x))
        codes, indices = out[0][0], out[1][0]
        loss = out[2] if len(out) > 2 else None
        if self.num_codebooks == 1:
            indices = indices[..., 0]
        return codes, indices, loss

    def _decode(self, indices):
        if indices.ndim == 1:
            indices = indices[:, None]
        return self.inner.get_output_from_indices(_batched(indices))[0]


class SimVQAdapter(UpstreamQuantizer):
    """``vector_quantize_pytorch.SimVQ`` plus input/output projections when ``dim`` differs from
    the codebook dim (upstream has none)."""

    def __init__(self, inner: nn.Module, *, codebook_dim: int, dim: int, **kwargs: Any) -> None:
        super().__init__(inner, dim=dim, **kwargs)
        project = dim != codebook_dim
        self.project_in = nn.Linear(dim, codebook_dim) if project else nn.Identity()
        self.project_out = nn.Linear(codebook_dim, dim) if project else nn.Identity()

    def _quantize(self, x):
        codes, indices, loss = self.inner(_batched(self.project_in(x)))
        return self.project_out(codes[0]), indices[0], loss

    def _decode(self, indices):
        return self.project_out(self.inner.indices_to_codes(_batched(indices))[0])


class LatentQuantizeAdapter(UpstreamQuantizer):
    """``vector_quantize_pytorch.LatentQuantize`` with its quantization step done here.

    The upstream module supplies the projections, the per-dimension value sets and the loss
    weights; the adapter does the nearest-value step itself, because upstream (1.32)
    - turns codes into indices through the *initial* value grid and truncates instead of rounding,
      so once the values are learned the indices are wrong;
    - decodes indices through the initial grid too, never through the learned values;
    - detaches the gathered values inside its straight-through step, so the values never get a
      gradient (``optimize_values=True`` has no effect).
    Here indices are the mixed-radix number of the per-dimension value positions (upstream's
    basis), decoding gathers the current values, and the loss is the paper's (arXiv 2305.18378):
    ``quantization_loss_weight * |sg(z) - zq|^2 + commitment_loss_weight * |z - sg(zq)|^2``.
    """

    def __init__(self, inner: nn.Module, **kwargs: Any) -> None:
        super().__init__(inner, **kwargs)
        values = inner.values_per_latent
        if not isinstance(values, nn.ParameterList):  # optimize_values=False: keep them as buffers
            inner.values_per_latent = nn.ParameterList(nn.Parameter(v, requires_grad=False) for v in values)

    def _quantize(self, x):
        lq = self.inner
        z = rearrange(lq.project_in(x), "n (c d) -> n c d", c=self.num_codebooks)
        values = list(lq.values_per_latent)
        positions = torch.stack(
            [(z[..., i, None] - v).abs().argmin(dim=-1) for i, v in enumerate(values)], dim=-1
        )
        zq = torch.stack([v[positions[..., i]] for i, v in enumerate(values)], dim=-1)
        quantization = F.mse_loss(zq, z.detach())  # pulls the values to the latents
        commitment = F.mse_loss(z, zq.detach())  # pulls the latents to the values
        loss = lq.quantization_loss_weight * quantization + lq.commitment_loss_weight * commitment
        codes = z + (zq - z).detach() if z.requires_grad else zq
        indices = (positions * lq._basis).sum(dim=-1)
        codes = lq.project_out(rearrange(codes, "n c d -> n (c d)"))
        if self.num_codebooks == 1:
            indices = indices[..., 0]
        return codes, indices, loss

    def _decode(self, indices):
        lq = self.inner
        if indices.ndim == 1:
            indices = indices[:, None]
        positions = (indices[..., None] // lq._basis) % lq._levels
        values = list(lq.values_per_latent)
        codes = torch.stack([v[positions[..., i]] for i, v in enumerate(values)], dim=-1)
        return lq.project_out(rearrange(codes, "n c d -> n (c d)"))
