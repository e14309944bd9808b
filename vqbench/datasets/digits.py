"""scikit-learn's handwritten digits: 1797 grayscale 8x8 images shipped with the package; tiny, for tests."""

from __future__ import annotations

import functools

import torch

from ._base import Dataset, DatasetUnavailableError, make_dataset, permutation, split_counts


@functools.lru_cache(maxsize=1)
def _images() -> torch.Tensor:
    """All 1797 images as (N, 1, 8, 8) float32 in [0, 1]; cached, never handed out without a copy."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DatasetUnavailableError(
            "dataset 'digits' needs scikit-learn: pip install scikit-learn (or vqbench[data])"
        ) from exc
    images = load_digits().images  # (1797, 8, 8) float64, values 0..16
    return torch.from_numpy(images).div(16.0).to(torch.float32).unsqueeze(1)


def digits(*, seed: int = 0, eval_fraction: float = 0.2) -> Dataset:
    """Handwritten digits from scikit-learn, (N, 1, 8, 8) in [0, 1]; a seeded random split."""
    images = _images()
    n_train, _ = split_counts(len(images), eval_fraction, "digits")
    order = permutation(len(images), seed, "digits:split")
    train, eval = images[order[:n_train]], images[order[n_train:]]  # advanced indexing copies
    return make_dataset("digits", "images", train, eval, {"origin": "sklearn.datasets.load_digits"})
