"""Index agreement: what a quantizer gives in another precision, against float32 on the same inputs.

One cell per quantizer and precision (``params["dtype"]``: ``bfloat16``, ``float16``,
``autocast-bfloat16``, ``autocast-float16``; see ``vqbench.suite.precision``). The engine builds the
quantizer once, seeds a learned codebook from data (``warm_batches`` training-mode forwards on
inputs apart from the measured ones, as a first training batch does), then runs the measured input
in eval mode twice: in float32 (the reference) and in the precision. Figures:

- ``index_change_share``: the share of tokens whose index changes (a token of several codebooks
  changes when any of its indices does);
- ``code_error_max`` and ``code_error_mean``: the absolute difference of the codes, as float32;
- ``requested_dtype_share``: the share of the floating-point elements that the quantizer's
  computing ops wrote in the requested dtype (0: it computed in another one, silently); every row's
  extra holds ``ran_dtype`` (the dtype of most of them, measured), ``dtype_shares`` and
  ``output_dtype`` (the codes' dtype).

A quantizer that raises in the precision gives an error row that says it refuses it.
Defaults (``PARAMS``): ``size`` = 65536 vectors of ``seq_len`` = 256, standard normal times
``scale`` = 1.0, ``warm_batches`` = 1, ``threads`` = None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ._common import build_quantizer, figure, positive_float, positive_int, resolve_params
from .precision import (
    KIND_PRECISIONS,
    autocast_context,
    precision_extra,
    ran_dtype,
    refusal_named,
    split_precision,
)
from .throughput import gaussian_input
from .timing import fix_threads

if TYPE_CHECKING:
    from .cells import Cell

PARAMS: dict[str, Any] = {
    "dtype": "bfloat16",
    "size": 65536,
    "seq_len": 256,
    "scale": 1.0,
    "warm_batches": 1,
    "threads": None,
}


def check(params: dict[str, Any]) -> None:
    if params["dtype"] not in KIND_PRECISIONS["agreement"]:
        raise ValueError(
            f"param 'dtype' must be one of {list(KIND_PRECISIONS['agreement'])} (float32 is the "
            f"reference), got {params['dtype']!r}"
        )
    positive_int(params, "size")
    positive_int(params, "seq_len")
    positive_int(params, "warm_batches", allow_zero=True)
    positive_float(params, "scale")
    if params["threads"] is not None:
        positive_int(params, "threads")


def _token_changed(a: torch.Tensor, b: torch.Tensor, tokens: int) -> torch.Tensor:
    """Per token: whether any of its indices differ (indices ``(..., )`` or ``(..., codebooks)``)."""
    diff = a.reshape(tokens, -1) != b.reshape(tokens, -1)
    return diff.any(dim=1)


def measure(cell: Cell) -> list[dict]:
    """Agreement figures of the cell's quantizer in ``params["dtype"]`` against float32."""
    params = resolve_params(cell, PARAMS)
    check(params)
    precision = params["dtype"]
    fix_threads(params["threads"])
    dtype, autocast = split_precision(precision)
    torch.manual_seed(cell.seed)
    call, quantizer = build_quantizer(cell)
    dim = int(quantizer.dim)
    gen = torch.Generator().manual_seed(cell.seed)
    size, seq = params["size"], params["seq_len"]

    def sample() -> torch.Tensor:
        x = gaussian_input(size, dim, seq_len=seq, generator=gen, device=cell.device)
        return x * params["scale"]

    quantizer.train()
    with torch.no_grad():
        for _ in range(params["warm_batches"]):
            call(sample())
    quantizer.eval()
    x = sample()
    tokens = x.numel() // dim
    with torch.no_grad():
        ref = call(x)
        low_in = x.to(dtype)
        with refusal_named(cell.quantizer, precision), autocast_context(cell.device, precision):
            ran, shares = ran_dtype(lambda: call(low_in))
            out = call(low_in)
    asked = autocast if autocast is not None else dtype
    asked_name = str(asked).removeprefix("torch.")
    changed = _token_changed(out.indices, ref.indices, tokens)
    err = (out.codes.float() - ref.codes.float()).abs()
    extra = {
        **precision_extra(precision),
        "reference": "float32",
        "ran_dtype": ran,
        "dtype_shares": shares,
        "output_dtype": str(out.codes.dtype).removeprefix("torch."),
        "tokens": tokens,
        "input": f"{size} standard-normal vectors x {params['scale']}, eval mode",
    }
    return [
        figure(
            "index_change_share",
            float(changed.float().mean()),
            "ratio",
            False,
            n=tokens,
            extra={**extra, "changed_tokens": int(changed.sum())},
        ),
        figure(
            "code_error_max",
            float(err.max()) if err.numel() else 0.0,
            "abs",
            False,
            n=err.numel(),
            extra=extra,
        ),
        figure(
            "code_error_mean",
            float(err.mean()) if err.numel() else 0.0,
            "abs",
            False,
            n=err.numel(),
            extra=extra,
        ),
        figure("requested_dtype_share", shares.get(asked_name, 0.0), "ratio", None, extra=extra),
    ]


__all__ = ["PARAMS", "check", "measure"]
