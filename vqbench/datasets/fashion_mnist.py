"""Fashion-MNIST from its standard IDX files in a folder (raw or ``.gz``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ._base import Dataset, DatasetUnavailableError, check_count, make_dataset, resolve_folder, subset
from .idx import read_idx

ENV = "VQBENCH_FASHION_MNIST"
DEBIAN_PATH = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist package
FILES = {"train": "train-images-idx3-ubyte", "eval": "t10k-images-idx3-ubyte"}
HOW_TO_GET = (
    "install Debian's package (apt-get install dataset-fashion-mnist, into "
    f"{DEBIAN_PATH}), or put the IDX files {FILES['train']}.gz and {FILES['eval']}.gz from "
    "github.com/zalandoresearch/fashion-mnist in a folder and pass path=FOLDER or set "
    f"{ENV}=FOLDER"
)


def find_file(folder: Path, stem: str) -> Path | None:
    """``stem`` in ``folder``, raw or gzip, with '-' or '.' before 'idx' (both spellings are in use)."""
    alt = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", alt, alt + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def fashion_mnist(
    *, seed: int = 0, path: str | None = None, n_train: int | None = 10000, n_eval: int | None = 2000
) -> Dataset:
    """Fashion-MNIST, (N, 1, 28, 28) in [0, 1]: train from the training file, eval from the test file.

    ``n_train`` / ``n_eval`` take a seeded subset (None: all 60000 / 10000).
    """
    check_count(n_train, "n_train", allow_none=True)
    check_count(n_eval, "n_eval", allow_none=True)
    folder, origin = resolve_folder(path, ENV, DEBIAN_PATH)
    files = {part: find_file(folder, stem) for part, stem in FILES.items()}
    missing = [FILES[p] for p, f in files.items() if f is None]
    if missing:
        where = (
            f"{folder} (from {origin})" if folder.is_dir() else f"{folder} (from {origin}; no such folder)"
        )
        raise DatasetUnavailableError(
            f"Fashion-MNIST not found: {', '.join(missing)}[.gz] missing in {where}. To get it: {HOW_TO_GET}"
        )
    arrays = {}
    for part, file in files.items():  # read and check both files before anything else
        arrays[part] = read_idx(file, copy=False)  # the cached array: indexing below copies
        if arrays[part].dtype != "uint8" or arrays[part].ndim != 3 or len(arrays[part]) < 1:
            raise ValueError(
                f"{file}: expected uint8 images (N, H, W), got {arrays[part].dtype} {arrays[part].shape}"
            )
    parts = {}
    for part, array in arrays.items():
        count = n_train if part == "train" else n_eval
        index = subset(
            len(array), count, seed, f"fashion-mnist:{part}", f"fashion-mnist {part} ({files[part]})"
        )
        parts[part] = torch.from_numpy(array)[index].unsqueeze(1).to(torch.float32).div_(255.0)
    meta = {
        "origin": "Fashion-MNIST IDX files",
        "path": str(folder.resolve()),
        "files": [str(f) for f in files.values()],
    }
    return make_dataset("fashion-mnist", "images", parts["train"], parts["eval"], meta)
