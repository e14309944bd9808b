"""``toy-distortion``: the quantizer's squared error and code usage on a dataset, untrained."""

from __future__ import annotations

from typing import Any

import torch

import vqbench
from vqbench.datasets import load_dataset
from vqbench.engines import EngineSpec, FigureSpec, SummaryColumn

PARAMS: dict[str, Any] = {"eval_vectors": 256}


def check(params: dict[str, Any]) -> None:
    """Refuse what ``measure`` cannot use."""
    n = params["eval_vectors"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"param 'eval_vectors' must be a positive integer, got {n!r}")


def measure(cell: Any) -> list[dict[str, Any]]:
    """One cell: project the eval split to the quantizer's width, quantize, and measure."""
    params = {**PARAMS, **cell.params}
    check(params)
    torch.manual_seed(cell.seed)
    quantizer = vqbench.create_quantizer(cell.quantizer, **cell.config).eval()
    data = load_dataset(cell.dataset, seed=cell.seed, **cell.dataset_options)
    x = data.eval[: params["eval_vectors"]]
    projection = torch.randn(x.shape[-1], quantizer.dim, generator=torch.Generator().manual_seed(cell.seed))
    z = x @ projection / x.shape[-1] ** 0.5
    with torch.no_grad():
        out = quantizer(z)
    used = torch.unique(out.indices.reshape(len(z), -1), dim=0).shape[0]
    extra = {"eval_vectors": len(z), "dataset_checksum": data.checksum}
    return [
        {
            "metric": "distortion",
            "value": float((out.codes - z).pow(2).mean()),
            "unit": "mse",
            "higher_is_better": False,
            "n": len(z),
            "extra": extra,
        },
        {
            "metric": "codes_used",
            "value": float(used),
            "unit": "codes",
            "higher_is_better": True,
            "n": len(z),
            "extra": extra,
        },
    ]


ENGINE = EngineSpec(
    "toy-distortion",
    __name__,
    "squared error and codes used, before any training (toy plugin)",
    needs_dataset=True,
    figures=(FigureSpec("distortion", "mse", False, primary=True), FigureSpec("codes_used", "codes", True)),
    summary=(SummaryColumn("distortion", "toy mse", "si"),),
    legend="toy mse: untrained distortion",
)
