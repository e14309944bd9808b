"""The dataset registry, the Dataset contract, and the synthetic sources."""

from __future__ import annotations

import math

import pytest
import torch

from vqbench.datasets import (
    Dataset,
    DatasetUnavailableError,
    UnknownDatasetError,
    _registry,
    checksum,
    get_dataset_spec,
    list_datasets,
    load_dataset,
    make_dataset,
    register_dataset,
)
from vqbench.errors import UserError

SYNTHETIC = ["gaussian", "gaussian-mixture", "uniform", "laplace", "correlated-gaussian"]
SMALL = {"dim": 8, "n_train": 512, "n_eval": 256}


@pytest.fixture
def scratch_registry():
    """Names registered inside a test are removed afterwards."""
    state = _registry.DATASETS.snapshot()
    yield
    _registry.DATASETS.restore(state)


def test_builtins_are_listed():
    names = list_datasets()
    for name in [*SYNTHETIC, "digits", "skimage-gray", "skimage-rgb", "fashion-mnist", "speech", "latents"]:
        assert name in names
    assert names == sorted(names)
    assert list_datasets("gaussian*") == ["gaussian", "gaussian-mixture"]
    assert list_datasets("digits, uniform") == ["digits", "uniform"]


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownDatasetError, match="did you mean 'gaussian'") as info:
        load_dataset("gausian")
    assert isinstance(info.value, KeyError)
    assert "Registered:" in str(info.value) and "fashion-mnist" in str(info.value)
    with pytest.raises(UserError, match="non-empty string"):
        load_dataset("")


def test_unknown_option_names_the_accepted_ones():
    with pytest.raises(TypeError, match=r"unknown option\(s\) dimension; accepted: dim, n_train, n_eval"):
        load_dataset("gaussian", dimension=4)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dim": 0}, "dim must be an int >= 1, got 0"),
        ({"n_train": 2.5}, "n_train must be an int >= 1, got 2.5"),
        ({"n_eval": True}, "n_eval must be an int >= 1, got True"),
    ],
)
def test_bad_synthetic_options(options, message):
    with pytest.raises(ValueError, match=message):
        load_dataset("gaussian", **options)


def test_bad_seed():
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        load_dataset("uniform", seed=-1, **SMALL)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_contract(name):
    ds = load_dataset(name, **SMALL)
    assert isinstance(ds, Dataset)
    assert ds.name == name and ds.kind == "vectors"
    assert ds.train.shape == (512, 8) and ds.eval.shape == (256, 8)
    assert ds.train.dtype == ds.eval.dtype == torch.float32
    assert ds.sample_shape == (8,)
    assert ds.checksum == checksum(ds.train, ds.eval)
    assert ds.meta["options"] == {**SMALL, **{k: v for k, v in ds.meta["options"].items() if k not in SMALL}}
    assert ds.meta["seed"] == 0 and ds.meta["source"] == "synthetic"
    assert not torch.equal(ds.train[:256], ds.eval)  # independent streams


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_is_seeded(name):
    a, b = load_dataset(name, **SMALL), load_dataset(name, **SMALL)
    assert torch.equal(a.train, b.train) and torch.equal(a.eval, b.eval) and a.checksum == b.checksum
    c = load_dataset(name, seed=1, **SMALL)
    assert c.checksum != a.checksum and not torch.equal(a.train, c.train)
    # eval does not depend on n_train, and a smaller train split is a prefix of a larger one
    d = load_dataset(name, **{**SMALL, "n_train": 100})
    assert torch.equal(d.eval, a.eval) and torch.equal(d.train, a.train[:100])


def test_synthetic_checksum_is_pinned():
    """The same numbers on every machine: pinned digest of a tiny draw (torch's CPU generator)."""
    ds = load_dataset("gaussian", dim=3, n_train=4, n_eval=2)
    assert ds.checksum == "00bcdb0a0f45da07eefdcc369319d081164df4dca5ebfc8c061d0815e5c71317"
    assert ds.train[0].tolist() == pytest.approx([0.8552, -0.2371, 2.4618], abs=1e-4)


def _kurtosis(x: torch.Tensor) -> float:
    x = x.double() - x.double().mean(0)
    return float(((x**4).mean(0) / (x**2).mean(0) ** 2).mean())


@pytest.mark.parametrize(
    ("name", "kurtosis"),
    [("gaussian", 3.0), ("uniform", 1.8), ("laplace", 6.0), ("correlated-gaussian", 3.0)],
)
def test_synthetic_moments(name, kurtosis):
    ds = load_dataset(name, dim=8, n_train=40000, n_eval=16)
    x = ds.train.double()
    assert x.mean(0).abs().max() < 0.03
    assert (x.var(0) - 1).abs().max() < 0.05
    assert _kurtosis(ds.train) == pytest.approx(kurtosis, rel=0.08)


def test_uniform_bounds():
    x = load_dataset("uniform", **SMALL).train
    assert x.abs().max() <= math.sqrt(3) and x.abs().max() > 1.6


def test_correlated_gaussian_follows_rho():
    x = load_dataset("correlated-gaussian", dim=6, n_train=40000, n_eval=16, rho=0.8).train.double()
    corr = torch.corrcoef(x.T)
    for lag in (1, 2, 3):
        assert torch.diagonal(corr, lag).mean() == pytest.approx(0.8**lag, abs=0.02)
    with pytest.raises(ValueError, match=r"rho must be a number in \(-1, 1\), got 1"):
        load_dataset("correlated-gaussian", rho=1)


def test_gaussian_mixture_is_clustered():
    ds = load_dataset("gaussian-mixture", dim=8, n_train=2000, n_eval=16, components=4, component_std=0.1)
    leaders: list[torch.Tensor] = []  # greedy clustering: a point farther than 1.5 from all leaders leads
    for point in ds.train:
        if not leaders or torch.cdist(point[None], torch.stack(leaders)).min() > 1.5:
            leaders.append(point)
    assert len(leaders) == 4
    spread = load_dataset("gaussian", dim=8, n_train=200, n_eval=16).train
    assert torch.cdist(spread, spread).add(torch.eye(200) * 99).min(1).values.mean() > 1.0
    with pytest.raises(ValueError, match="component_std"):
        load_dataset("gaussian-mixture", component_std=1.5)


def test_register_a_loader_returning_a_tuple(scratch_registry):
    @register_dataset("toy-ramp", kind="vectors", source="tests")
    def ramp(*, seed: int = 0, n: int = 6):
        """A ramp."""
        x = torch.arange(float(n * 2)).view(n, 2)
        return x[:4], x[4:], {"note": "ramp"}

    ds = load_dataset("toy-ramp")
    assert ds.name == "toy-ramp" and ds.kind == "vectors" and ds.eval.shape == (2, 2)
    assert ds.meta["note"] == "ramp" and ds.meta["source"] == "tests" and ds.meta["options"] == {"n": 6}
    assert get_dataset_spec("toy-ramp").description == "A ramp."
    assert get_dataset_spec("toy-ramp").options() == {"n": 6}
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("toy-ramp", lambda seed=0: None, kind="vectors")
    register_dataset("toy-ramp", ramp, kind="vectors")  # the same loader again is fine


def test_registered_loader_errors(scratch_registry):
    register_dataset("toy-none", lambda *, seed=0: None, kind="vectors")
    with pytest.raises(TypeError, match="must return a Dataset or a"):
        load_dataset("toy-none")
    register_dataset(
        "toy-nan", lambda *, seed=0: (torch.full((3, 2), math.nan), torch.ones(2, 2)), kind="vectors"
    )
    with pytest.raises(ValueError, match="train has 6 NaN or infinite values"):
        load_dataset("toy-nan")
    register_dataset(
        "toy-int", lambda *, seed=0: (torch.ones(3, 2, dtype=torch.long), torch.ones(2, 2)), kind="vectors"
    )
    with pytest.raises(TypeError, match="floating-point data, got dtype torch.int64"):
        load_dataset("toy-int")

    def offline(*, seed=0):
        raise DatasetUnavailableError("toy data is offline: mount it")

    register_dataset("toy-offline", offline, kind="vectors")
    with pytest.raises(DatasetUnavailableError, match="mount it"):
        load_dataset("toy-offline")
    with pytest.raises(ValueError, match="kind must be one of vectors, images, audio"):
        register_dataset("toy-bad-kind", offline, kind="video")
    with pytest.raises(ValueError, match="without spaces"):
        register_dataset("toy bad", offline, kind="vectors")


@pytest.mark.parametrize(
    ("kind", "train", "message"),
    [
        ("vectors", torch.ones(3, 2, 2), r"vectors train must be 2-D \(N, D\), got shape \(3, 2, 2\)"),
        ("images", torch.ones(3, 4), r"images train must be 4-D \(N, C, H, W\), got shape \(3, 4\)"),
        ("images", torch.full((2, 1, 2, 2), 2.0), r"values in \[0, 1\], train spans \[2, 2\]"),
        ("audio", torch.ones(0, 4), r"train is empty"),
    ],
)
def test_make_dataset_checks_layout(kind, train, message):
    eval = train[:1] if len(train) else torch.ones(1, 4)
    with pytest.raises(ValueError, match=message):
        make_dataset("x", kind, train, eval)


def test_make_dataset_checks_matching_shapes():
    with pytest.raises(ValueError, match=r"same shape, got \(2,\) and \(3,\)"):
        make_dataset("x", "vectors", torch.ones(4, 2), torch.ones(4, 3))


def test_checksum_covers_data_and_split():
    a, b = torch.zeros(4, 2), torch.ones(2, 2)
    base = checksum(a, b)
    assert len(base) == 64 and int(base, 16) >= 0
    assert checksum(a.clone(), b.clone()) == base
    a2 = a.clone()
    a2[3, 1] = 1e-30
    assert checksum(a2, b) != base
    assert checksum(torch.cat([a, b[:1]]), b[1:]) != checksum(a, b)  # same bytes, other split
    assert checksum(a.view(2, 4), b.view(1, 4)) != base  # same bytes, other shape


def test_dataset_repr_is_short():
    ds = load_dataset("gaussian", **SMALL)
    text = repr(ds)
    assert "train=(512, 8)" in text and ds.checksum[:12] in text and len(text) < 200


def test_a_loader_with_open_options(scratch_registry, capsys):
    from vqbench.cli import main

    @register_dataset("toy-open", kind="vectors")
    def open_loader(*, seed: int = 0, **options):
        n = int(options.get("n", 4))
        return torch.ones(n, 2), torch.ones(2, 2), {"got": sorted(options)}

    assert get_dataset_spec("toy-open").accepts_any_option()
    assert not get_dataset_spec("gaussian").accepts_any_option()
    assert load_dataset("toy-open", n=5, colour="red").meta["got"] == ["colour", "n"]
    assert main(["datasets", "toy-open", "-o", "n=7"]) == 0
    assert "7/2" in capsys.readouterr().out
