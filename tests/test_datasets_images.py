"""Image datasets: scikit-learn digits, scikit-image patches, Fashion-MNIST IDX files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from vqbench.datasets import DatasetUnavailableError, load_dataset
from vqbench.datasets.fashion_mnist import DEBIAN_PATH
from vqbench.datasets.idx import parse_idx, read_idx, write_idx


def _check_images(ds, channels: int, size: int) -> None:
    assert ds.kind == "images"
    for part in (ds.train, ds.eval):
        assert part.dtype == torch.float32 and part.ndim == 4 and part.shape[1:] == (channels, size, size)
        assert part.min() >= 0 and part.max() <= 1


# ---- digits ---------------------------------------------------------------------------------------


def test_digits():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    _check_images(ds, 1, 8)
    assert len(ds.train) + len(ds.eval) == 1797 and len(ds.eval) == round(1797 * 0.2)
    assert ds.meta["source"] == "scikit-learn"
    # the split is a partition of the real images, scaled from 0..16
    everything = torch.cat([ds.train, ds.eval]).flatten(1) * 16
    expected = torch.from_numpy(load_digits().data).float()
    assert torch.equal(torch.unique(everything, dim=0), torch.unique(expected, dim=0))
    again = load_dataset("digits")
    assert again.checksum == ds.checksum and torch.equal(again.train, ds.train)
    other = load_dataset("digits", seed=3)
    assert other.checksum != ds.checksum
    assert load_dataset("digits", eval_fraction=0.5).eval.shape[0] == 898


def test_digits_are_fresh_copies():
    a = load_dataset("digits")
    a.train.zero_()
    assert load_dataset("digits").train.max() == 1.0


# ---- scikit-image patches -------------------------------------------------------------------------


def test_skimage_gray_patches_are_cut_from_the_images():
    import skimage.data

    ds = load_dataset("skimage-gray", count=300, patch_size=8, images="camera,moon")
    _check_images(ds, 1, 8)
    assert (len(ds.train), len(ds.eval)) == (240, 60)
    assert ds.meta["images"] == ["camera", "moon"] and ds.meta["patches_available"] == 2 * 64 * 64
    assert ds.meta["overlapping"] is False
    # every patch is a block of one of the two images on the 8-pixel grid
    blocks = []
    for name in ("camera", "moon"):
        image = torch.from_numpy(getattr(skimage.data, name)()).float() / 255
        blocks.append(image.unfold(0, 8, 8).unfold(1, 8, 8).reshape(-1, 64))
    blocks = torch.cat(blocks)
    for patch in torch.cat([ds.train, ds.eval])[::25]:
        assert (blocks - patch.reshape(1, 64)).abs().amax(1).min() == 0
    assert len(torch.unique(torch.cat([ds.train, ds.eval]).flatten(1), dim=0)) > 250


def test_skimage_rgb_patches():
    ds = load_dataset("skimage-rgb", count=100, patch_size=16)
    _check_images(ds, 3, 16)
    assert (len(ds.train), len(ds.eval)) == (80, 20)
    x = torch.cat([ds.train, ds.eval])
    assert (x[:, 0] - x[:, 2]).abs().mean() > 0.02  # real colour, not gray copies
    assert load_dataset("skimage-rgb", count=100, patch_size=16).checksum == ds.checksum
    assert load_dataset("skimage-rgb", count=100, patch_size=16, seed=1).checksum != ds.checksum


def test_skimage_defaults_and_stride():
    ds = load_dataset("skimage-gray")
    _check_images(ds, 1, 16)
    assert (len(ds.train), len(ds.eval)) == (2560, 640)
    overlapping = load_dataset("skimage-gray", stride=4, count=50, images="coins")
    assert overlapping.meta["overlapping"] is True and overlapping.meta["patches_available"] == 72 * 93


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            {"count": 10**6},
            ValueError,
            r"count=1000000 patches asked, 5552 available .* lower count or stride",
        ),
        ({"patch_size": 600, "images": "camera"}, ValueError, "patch_size 600 exceeds image 'camera'"),
        ({"images": "camera,nosuchimage"}, ValueError, "no image named 'nosuchimage' in skimage.data"),
        ({"patch_size": 0}, ValueError, "patch_size must be an int >= 1, got 0"),
        ({"eval_fraction": 1.0}, ValueError, "eval_fraction must be a number strictly between 0 and 1"),
    ],
)
def test_skimage_bad_options(options, error, message):
    with pytest.raises(error, match=message):
        load_dataset("skimage-gray", **options)


def test_skimage_rgb_rejects_gray_images():
    with pytest.raises(ValueError, match="image 'camera' is not an RGB image"):
        load_dataset("skimage-rgb", images="camera")


# ---- IDX files and Fashion-MNIST ------------------------------------------------------------------


def _write_fashion(
    folder: Path, n_train: int = 50, n_eval: int = 20, gz: bool = True
) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, size=(n_eval, 28, 28), dtype=np.uint8)
    suffix = ".gz" if gz else ""
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", train)
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", test)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n_train, dtype=np.uint8))
    return train, test


def test_idx_round_trip_and_format(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = write_idx(tmp_path / "a-idx3-ubyte", array).read_bytes()
    assert (
        raw[:4] == bytes([0, 0, 0x08, 3]) and raw[4:8] == (2).to_bytes(4, "big") and len(raw) == 4 + 12 + 24
    )
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte"), array)
    write_idx(tmp_path / "b.gz", array)
    assert gzip.decompress((tmp_path / "b.gz").read_bytes()) == raw
    assert np.array_equal(read_idx(tmp_path / "b.gz"), array)
    wide = np.array([[1.5, -2.0]], dtype=np.float32)
    assert np.array_equal(parse_idx(write_idx(tmp_path / "f", wide).read_bytes()), wide)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00\x08", "not an IDX file"),
        (b"PK\x03\x04rest", r"not an IDX file \(expected magic bytes 00 00 <type> <ndim>"),
        (bytes([0, 0, 8, 2]) + (2).to_bytes(4, "big"), "truncated IDX header"),
        (
            bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"abc",
            r"declares shape \(5,\) .* the file has 11 bytes",
        ),
    ],
)
def test_idx_rejects_bad_bytes(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_idx(raw)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_a_folder(tmp_path, gz):
    train, test = _write_fashion(tmp_path / "fm", gz=gz)
    ds = load_dataset("fashion-mnist", path=str(tmp_path / "fm"), n_train=None, n_eval=None)
    _check_images(ds, 1, 28)
    assert torch.equal(ds.train, torch.from_numpy(train).float().unsqueeze(1) / 255)
    assert torch.equal(ds.eval, torch.from_numpy(test).float().unsqueeze(1) / 255)
    assert ds.meta["path"] == str((tmp_path / "fm").resolve())


def test_fashion_mnist_subsets_and_env(tmp_path, monkeypatch):
    train, _ = _write_fashion(tmp_path / "fm")
    monkeypatch.setenv("VQBENCH_FASHION_MNIST", str(tmp_path / "fm"))
    ds = load_dataset("fashion-mnist", n_train=10, n_eval=5)
    assert ds.train.shape == (10, 1, 28, 28) and ds.eval.shape == (5, 1, 28, 28)
    rows = {tuple(r) for r in (torch.from_numpy(train).float().flatten(1) / 255).tolist()}
    assert all(tuple(r) in rows for r in ds.train.flatten(1).tolist())
    assert load_dataset("fashion-mnist", n_train=10, n_eval=5).checksum == ds.checksum
    assert load_dataset("fashion-mnist", n_train=10, n_eval=5, seed=2).checksum != ds.checksum
    with pytest.raises(ValueError, match=r"asked for 51 samples, only 50 are available"):
        load_dataset("fashion-mnist", n_train=51)


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("VQBENCH_FASHION_MNIST", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("fashion-mnist")
    text = str(info.value)
    assert "nowhere" in text and "no such folder" in text and "$VQBENCH_FASHION_MNIST" in text
    assert "apt-get install dataset-fashion-mnist" in text and "path=FOLDER" in text
    (tmp_path / "half").mkdir()
    write_idx(tmp_path / "half" / "train-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DatasetUnavailableError, match=r"t10k-images-idx3-ubyte\[.gz\] missing"):
        load_dataset("fashion-mnist", path=str(tmp_path / "half"))


def test_fashion_mnist_rejects_corrupt_files(tmp_path):
    folder = tmp_path / "bad"
    _write_fashion(folder)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"garbage!"))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: not an IDX file"):
        load_dataset("fashion-mnist", path=str(folder))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28), np.uint8))
    with pytest.raises(ValueError, match=r"expected uint8 images \(N, H, W\), got uint8 \(3, 28\)"):
        load_dataset("fashion-mnist", path=str(folder))


@pytest.mark.skipif(not Path(DEBIAN_PATH).is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_debian_package(monkeypatch):
    monkeypatch.delenv("VQBENCH_FASHION_MNIST", raising=False)
    ds = load_dataset("fashion-mnist", n_train=2000, n_eval=500)
    _check_images(ds, 1, 28)
    assert ds.meta["path"] == DEBIAN_PATH
    assert 0.2 < float(ds.train.mean()) < 0.4  # Fashion-MNIST's mean pixel is about 0.29
    assert ds.train.flatten(1).std(0).max() > 0.3  # real images: strong per-pixel variation
