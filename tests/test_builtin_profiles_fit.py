"""Every built-in profile, expanded, fits the real data it asks for: values of the right type, patch
counts that exist, patches and downsampling that divide the images."""

from __future__ import annotations

import json

import pytest

from vqbench.datasets import DatasetUnavailableError, load_dataset
from vqbench.suite.expand import expand_profile
from vqbench.suite.input_checks import check_inputs
from vqbench.suite.profiles import BUILTIN_PROFILES, load_profile
from vqbench.suite.reconstruction import PARAMS as RECON
from vqbench.suite.usage import PARAMS as USAGE


@pytest.mark.parametrize("name", BUILTIN_PROFILES)
def test_builtin_profile_fits_its_datasets(name):
    profile = load_profile(name)
    cells = expand_profile(profile).cells
    check_inputs(profile, cells)
    loaded: dict[str, object] = {}
    problems = []
    for cell in cells:
        if not cell.dataset:
            continue
        key = json.dumps([cell.dataset, cell.dataset_options, cell.seed], sort_keys=True)
        if key not in loaded:
            try:
                loaded[key] = load_dataset(cell.dataset, seed=cell.seed, **cell.dataset_options)
            except DatasetUnavailableError:
                loaded[key] = None  # not installed here (CI installs it): its cells are skipped rows
            except (ValueError, TypeError) as exc:
                loaded[key] = exc
        data = loaded[key]
        if isinstance(data, Exception):
            problems.append(f"{cell.label}: {data}")
            continue
        if data is None or data.kind != "images":
            continue
        _, _, h, w = data.train.shape
        if cell.benchmark == "usage":
            patch = cell.params.get("patch", USAGE["patch"])
            if patch > min(h, w):
                problems.append(f"{cell.label}: usage patch {patch} exceeds the {h}x{w} images")
        if cell.benchmark == "reconstruction":
            down = cell.params.get("downsample", RECON["downsample"])
            if down is not None and (h % down or w % down):
                problems.append(f"{cell.label}: downsample {down} does not divide the {h}x{w} images")
    assert not problems, "\n".join(dict.fromkeys(problems))
