"""Synthetic vectors: gaussian, gaussian-mixture, uniform, laplace, correlated-gaussian.

Every coordinate has zero mean and unit variance (in expectation), so that the sources differ in shape
only. Values are computed in float64 from the uniform stream of a seeded ``torch.Generator`` (exact
integer arithmetic) and rounded to float32 once, so the data and its checksum do not depend on the
machine's float32 vector kernels (a test pins one checksum). Train and eval come from independent
streams: changing ``n_train`` leaves eval unchanged, and a smaller ``n_train`` gives a prefix of a
larger one.
"""

from __future__ import annotations

import math

import torch

from ._base import Dataset, check_count, generator, make_dataset

DEFAULT_DIM = 16
DEFAULT_N_TRAIN = 16384
DEFAULT_N_EVAL = 8192


def _uniform(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, dtype=torch.float64, generator=g)


def _normal(n: int, g: torch.Generator) -> torch.Tensor:
    """Box-Muller on interleaved uniform pairs, in float64."""
    pairs = (n + 1) // 2
    u = _uniform(2 * pairs, g)
    radius = torch.sqrt(-2.0 * torch.log1p(-u[0::2]))  # 1 - u in (0, 1]
    theta = (2.0 * math.pi) * u[1::2]
    return torch.stack([radius * torch.cos(theta), radius * torch.sin(theta)], dim=-1).flatten()[:n]


def _check(dim: int, n_train: int, n_eval: int) -> None:
    check_count(dim, "dim")
    check_count(n_train, "n_train")
    check_count(n_eval, "n_eval")


def _build(name: str, sample, seed: int, dim: int, n_train: int, n_eval: int, meta: dict) -> Dataset:
    """``sample(n, stream)`` gives an (n, dim) float64 tensor drawn from ``generator(seed, stream)``."""
    _check(dim, n_train, n_eval)
    train = sample(n_train, f"{name}:train")
    eval = sample(n_eval, f"{name}:eval")
    meta = {"generator": "torch.Generator (float64 uniform stream)", "dim": dim, **meta}
    return make_dataset(name, "vectors", train.to(torch.float32), eval.to(torch.float32), meta)


def gaussian(
    *, seed: int = 0, dim: int = DEFAULT_DIM, n_train: int = DEFAULT_N_TRAIN, n_eval: int = DEFAULT_N_EVAL
) -> Dataset:
    """Standard normal vectors, N(0, I)."""
    return _build(
        "gaussian",
        lambda n, s: _normal(n * dim, generator(seed, s)).view(n, dim),
        seed,
        dim,
        n_train,
        n_eval,
        {"distribution": "N(0, I)"},
    )


def uniform(
    *, seed: int = 0, dim: int = DEFAULT_DIM, n_train: int = DEFAULT_N_TRAIN, n_eval: int = DEFAULT_N_EVAL
) -> Dataset:
    """Uniform vectors on [-sqrt(3), sqrt(3)]^dim (unit variance)."""
    half = math.sqrt(3.0)
    return _build(
        "uniform",
        lambda n, s: (_uniform(n * dim, generator(seed, s)).view(n, dim) * 2.0 - 1.0) * half,
        seed,
        dim,
        n_train,
        n_eval,
        {"distribution": "U(-sqrt(3), sqrt(3))"},
    )


def laplace(
    *, seed: int = 0, dim: int = DEFAULT_DIM, n_train: int = DEFAULT_N_TRAIN, n_eval: int = DEFAULT_N_EVAL
) -> Dataset:
    """Laplace vectors with unit variance: heavier tails than a gaussian (kurtosis 6)."""
    scale = 1.0 / math.sqrt(2.0)

    def sample(n: int, stream: str) -> torch.Tensor:
        v = _uniform(n * dim, generator(seed, stream)).view(n, dim) - 0.5
        return -scale * torch.sign(v) * torch.log(torch.clamp_min(1.0 - 2.0 * v.abs(), 2.0**-53))

    return _build("laplace", sample, seed, dim, n_train, n_eval, {"distribution": "Laplace(0, 1/sqrt(2))"})


def gaussian_mixture(
    *,
    seed: int = 0,
    dim: int = DEFAULT_DIM,
    n_train: int = DEFAULT_N_TRAIN,
    n_eval: int = DEFAULT_N_EVAL,
    components: int = 16,
    component_std: float = 0.25,
) -> Dataset:
    """A mixture of equally likely isotropic gaussians with seeded centres (clustered data)."""
    check_count(components, "components")
    if (
        not isinstance(component_std, (int, float))
        or isinstance(component_std, bool)
        or not 0 < component_std < 1
    ):
        raise ValueError(f"component_std must be a number in (0, 1), got {component_std!r}")
    _check(dim, n_train, n_eval)
    # centres ~ N(0, (1 - s^2) I), so each coordinate has unit variance overall
    centres = _normal(components * dim, generator(seed, "gaussian-mixture:centres")).view(components, dim)
    centres = centres * math.sqrt(1.0 - component_std**2)

    def sample(n: int, stream: str) -> torch.Tensor:
        which = torch.randint(components, (n,), generator=generator(seed, stream + ":components"))
        return centres[which] + component_std * _normal(n * dim, generator(seed, stream)).view(n, dim)

    return _build(
        "gaussian-mixture",
        sample,
        seed,
        dim,
        n_train,
        n_eval,
        {"distribution": f"{components} equal gaussians, std {component_std}"},
    )


def correlated_gaussian(
    *,
    seed: int = 0,
    dim: int = DEFAULT_DIM,
    n_train: int = DEFAULT_N_TRAIN,
    n_eval: int = DEFAULT_N_EVAL,
    rho: float = 0.9,
) -> Dataset:
    """Gaussian vectors with covariance rho^|i-j| (an AR(1) process along the coordinates)."""
    if not isinstance(rho, (int, float)) or isinstance(rho, bool) or not -1 < rho < 1:
        raise ValueError(f"rho must be a number in (-1, 1), got {rho!r}")
    innovation = math.sqrt(1.0 - rho**2)

    def sample(n: int, stream: str) -> torch.Tensor:
        z = _normal(n * dim, generator(seed, stream)).view(n, dim)
        x = torch.empty_like(z)
        x[:, 0] = z[:, 0]
        for i in range(1, dim):
            x[:, i] = rho * x[:, i - 1] + innovation * z[:, i]
        return x

    return _build(
        "correlated-gaussian",
        sample,
        seed,
        dim,
        n_train,
        n_eval,
        {"distribution": f"N(0, rho^|i-j|), rho={rho}"},
    )
