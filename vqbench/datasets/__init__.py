"""Datasets: synthetic vectors, real images and speech, and users' own latents, by name.

``load_dataset(name, seed=0, **options)`` gives a ``Dataset`` with a fixed, seeded train/eval split
and a checksum of the exact data; ``DatasetUnavailableError`` says how to get data that is not here.
Importing this package is cheap: each source is imported when it is first loaded.
"""

from ._base import KINDS, Dataset, DatasetUnavailableError, UnknownDatasetError, checksum, make_dataset
from ._registry import DatasetSpec, get_dataset_spec, list_datasets, load_dataset, register_dataset

_P = "vqbench.datasets"
_SYN, _SK = "synthetic", "scikit-image"

# name, lazy loader, kind, source, description
_BUILTINS = [
    ("gaussian", f"{_P}.synthetic:gaussian", "vectors", _SYN, "standard normal vectors"),
    ("gaussian-mixture", f"{_P}.synthetic:gaussian_mixture", "vectors", _SYN, "16 gaussian clusters"),
    ("uniform", f"{_P}.synthetic:uniform", "vectors", _SYN, "uniform vectors, unit variance"),
    ("laplace", f"{_P}.synthetic:laplace", "vectors", _SYN, "Laplace vectors (heavy tails)"),
    ("correlated-gaussian", f"{_P}.synthetic:correlated_gaussian", "vectors", _SYN, "covariance rho^|i-j|"),
    ("digits", f"{_P}.digits:digits", "images", "scikit-learn", "handwritten digits 8x8 (tiny)"),
    ("skimage-gray", f"{_P}.natural_patches:skimage_gray", "images", _SK, "grayscale natural image patches"),
    ("skimage-rgb", f"{_P}.natural_patches:skimage_rgb", "images", _SK, "colour photograph patches"),
    ("fashion-mnist", f"{_P}.fashion_mnist:fashion_mnist", "images", "IDX files", "Fashion-MNIST 28x28"),
    ("speech", f"{_P}.speech:speech", "audio", "WAV folder", "frames of recorded speech"),
    ("latents", f"{_P}.latents:latents", "vectors", "user file", "your encoder's latents (.npy / .pt)"),
]

for _name, _target, _kind, _source, _doc in _BUILTINS:
    register_dataset(_name, _target, kind=_kind, source=_source, description=_doc)

__all__ = [
    "KINDS",
    "Dataset",
    "DatasetSpec",
    "DatasetUnavailableError",
    "UnknownDatasetError",
    "checksum",
    "get_dataset_spec",
    "list_datasets",
    "load_dataset",
    "make_dataset",
    "register_dataset",
]
