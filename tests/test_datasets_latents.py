"""User latents from .npy / .pt files, including real sentence embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vqbench.datasets import DatasetUnavailableError, load_dataset

EMBEDDINGS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pydoc_minilm_embeddings.npy"
needs_embeddings = pytest.mark.skipif(not EMBEDDINGS.is_file(), reason=f"{EMBEDDINGS} is absent")


@needs_embeddings
def test_real_embeddings_as_latents():
    ds = load_dataset("latents", path=str(EMBEDDINGS))
    assert ds.name == "latents" and ds.kind == "vectors"
    assert ds.train.shape == (1822, 384) and ds.eval.shape == (455, 384)
    assert ds.meta["file_shape"] == [2277, 384] and ds.meta["file_dtype"] == "torch.float32"
    # the split is a partition of the file's rows, and the rows are the unit-norm embeddings
    rows = torch.from_numpy(np.load(EMBEDDINGS))
    both = torch.cat([ds.train, ds.eval])
    assert torch.equal(torch.unique(both, dim=0), torch.unique(rows, dim=0))
    assert torch.allclose(both.norm(dim=1), torch.ones(len(both)), atol=1e-4)
    # a path as the name is the same dataset
    direct = load_dataset(str(EMBEDDINGS))
    assert direct.checksum == ds.checksum and direct.name == "latents"
    assert load_dataset(str(EMBEDDINGS), seed=1).checksum != ds.checksum
    capped = load_dataset(str(EMBEDDINGS), max_train=100, max_eval=10)
    assert capped.train.shape == (100, 384) and torch.equal(capped.eval, ds.eval[:10])


@needs_embeddings
def test_real_embeddings_through_torch_save(tmp_path):
    rows = torch.from_numpy(np.load(EMBEDDINGS))
    torch.save({"z": rows[:300].reshape(10, 30, 384), "labels": torch.arange(10)}, tmp_path / "enc.pt")
    ds = load_dataset(str(tmp_path / "enc.pt"), key="z", eval_fraction=0.1)
    assert (len(ds.train), len(ds.eval)) == (270, 30)
    assert torch.equal(torch.unique(torch.cat([ds.train, ds.eval]), dim=0), torch.unique(rows[:300], dim=0))


def test_npy_leading_axes_are_flattened(tmp_path):
    z = np.arange(2 * 5 * 3, dtype=np.float64).reshape(2, 5, 3)
    np.save(tmp_path / "z.npy", z)
    ds = load_dataset(str(tmp_path / "z.npy"))
    assert ds.train.dtype == torch.float32 and ds.sample_shape == (3,)
    assert len(ds.train) + len(ds.eval) == 10 and len(ds.eval) == 2
    assert sorted(map(tuple, torch.cat([ds.train, ds.eval]).tolist())) == [tuple(r) for r in z.reshape(10, 3)]


def test_channel_dim_moves_the_feature_axis(tmp_path):
    z = torch.randn(4, 6, 2, 2)  # (B, C, H, W): the features are channels
    torch.save(z, tmp_path / "z.pt")
    ds = load_dataset("latents", path=str(tmp_path / "z.pt"), channel_dim=1)
    assert ds.sample_shape == (6,) and len(ds.train) + len(ds.eval) == 16
    expected = {tuple(r) for r in z.permute(0, 2, 3, 1).reshape(-1, 6).tolist()}
    assert {tuple(r) for r in torch.cat([ds.train, ds.eval]).tolist()} == expected
    with pytest.raises(ValueError, match=r"channel_dim=4 is out of range for shape \(4, 6, 2, 2\)"):
        load_dataset("latents", path=str(tmp_path / "z.pt"), channel_dim=4)


def test_half_precision_pt(tmp_path):
    torch.save(torch.randn(20, 4, dtype=torch.bfloat16), tmp_path / "z.pt")
    ds = load_dataset(str(tmp_path / "z.pt"))
    assert ds.train.dtype == torch.float32 and ds.sample_shape == (4,)


def test_images_when_asked(tmp_path):
    x = torch.rand(10, 3, 4, 4)
    torch.save(x, tmp_path / "img.pt")
    ds = load_dataset("latents", path=str(tmp_path / "img.pt"), kind="images")
    assert ds.kind == "images" and ds.sample_shape == (3, 4, 4)
    np.save(tmp_path / "gray.npy", x[:, 0].numpy())
    assert load_dataset(str(tmp_path / "gray.npy"), kind="images").sample_shape == (1, 4, 4)
    np.save(tmp_path / "hwc.npy", x.permute(0, 2, 3, 1).numpy())
    hwc = load_dataset(str(tmp_path / "hwc.npy"), kind="images", channel_dim=-1)
    assert hwc.sample_shape == (3, 4, 4)
    assert torch.equal(torch.unique(torch.cat([hwc.train, hwc.eval]), dim=0), torch.unique(x, dim=0))
    np.save(tmp_path / "wide.npy", x.numpy() * 255)
    with pytest.raises(ValueError, match=r"images must have values in \[0, 1\], got \[.*\]; rescale them"):
        load_dataset(str(tmp_path / "wide.npy"), kind="images")
    np.save(tmp_path / "flat.npy", x.reshape(10, -1).numpy())
    with pytest.raises(
        ValueError, match=r"images must be \(N, C, H, W\) or \(N, H, W\), got shape \(10, 48\)"
    ):
        load_dataset(str(tmp_path / "flat.npy"), kind="images")


def test_no_file_given_is_unavailable(monkeypatch):
    monkeypatch.delenv("VQBENCH_LATENTS", raising=False)
    with pytest.raises(DatasetUnavailableError, match=r"no file given.*path='z.npy'.*VQBENCH_LATENTS"):
        load_dataset("latents")


def test_env_names_the_file(tmp_path, monkeypatch):
    np.save(tmp_path / "z.npy", np.ones((8, 2), np.float32))
    monkeypatch.setenv("VQBENCH_LATENTS", str(tmp_path / "z.npy"))
    assert load_dataset("latents").meta["path"] == str((tmp_path / "z.npy").resolve())


def test_missing_file_is_unavailable(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such file: .*nothere.npy"):
        load_dataset(str(tmp_path / "nothere.npy"))


@pytest.mark.parametrize(
    ("array", "error", "message"),
    [
        (np.arange(12).reshape(6, 2), TypeError, "expected floating-point latents .* got dtype int64"),
        (
            np.ones(7, np.float32),
            ValueError,
            r"expected 2 or more dimensions, \(N, D\) or \(\.\.\., D\), got \(7,\)",
        ),
        (np.zeros((0, 4), np.float32), ValueError, r"expected a non-empty array, got shape \(0, 4\)"),
        (
            np.ones((1, 4), np.float32),
            ValueError,
            "need at least 2 samples to split into train and eval, got 1",
        ),
        (
            np.array([[1.0, 2.0], [np.nan, 1.0], [0.0, np.inf]]),
            ValueError,
            r"2 NaN or infinite values \(first at",
        ),
        (np.array(["a", "b"]), TypeError, "expected floating-point latents"),
    ],
)
def test_bad_npy_contents(tmp_path, array, error, message):
    np.save(tmp_path / "z.npy", array)
    with pytest.raises(error, match=message):
        load_dataset(str(tmp_path / "z.npy"))


def test_bad_pt_contents(tmp_path):
    torch.save({"a": torch.ones(4, 2), "b": torch.ones(4, 2)}, tmp_path / "two.pt")
    with pytest.raises(ValueError, match=r"dict with tensors \['a', 'b'\]; pass key=NAME"):
        load_dataset(str(tmp_path / "two.pt"))
    with pytest.raises(KeyError, match=r"no key 'c'; the file has keys \['a', 'b'\]"):
        load_dataset(str(tmp_path / "two.pt"), key="c")
    torch.save(torch.ones(4, 2, dtype=torch.int32), tmp_path / "int.pt")
    with pytest.raises(TypeError, match="got torch.int32"):
        load_dataset(str(tmp_path / "int.pt"))
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(TypeError, match="expected a tensor .* got list"):
        load_dataset(str(tmp_path / "list.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="could not load it as tensors"):
        load_dataset(str(tmp_path / "junk.pt"))


def test_bad_options(tmp_path):
    np.save(tmp_path / "z.npy", np.ones((8, 2), np.float32))
    with pytest.raises(ValueError, match="kind must be 'vectors' or 'images', got 'audio'"):
        load_dataset(str(tmp_path / "z.npy"), kind="audio")
    with pytest.raises(TypeError, match="is a path already"):
        load_dataset(str(tmp_path / "z.npy"), path="other.npy")
    with pytest.raises(ValueError, match=r"expected a \.npy / \.pt / \.pth file, got"):
        load_dataset("latents", path=str(tmp_path / "z.csv"))
    with pytest.raises(ValueError, match="key='x' applies to .pt files"):
        load_dataset(str(tmp_path / "z.npy"), key="x")


def test_a_changed_file_is_read_again(tmp_path):
    path = tmp_path / "z.npy"
    np.save(path, np.zeros((8, 2), np.float32))
    first = load_dataset(str(path)).checksum
    np.save(path, np.ones((9, 2), np.float32))
    assert load_dataset(str(path)).checksum != first
