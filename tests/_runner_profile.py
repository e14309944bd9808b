"""A tiny suite profile for the runner tests, written into a test's tmp folder."""

from __future__ import annotations

from pathlib import Path

from vqbench.results import ResultStore

PLUG = Path(__file__).parent / "plugins" / "runner_plugins.py"


def profile(tmp_path: Path, quantizers: list[str], extra: str = "", timeout: float = 60) -> Path:
    """A tiny profile: codebook usage on 256 Gaussian vectors, two training steps."""
    names = ", ".join(f'"{q}"' for q in quantizers)
    path = tmp_path / "tiny.toml"
    path.write_text(f"""
[suite]
name = "tiny"
quantizers = [{names}]
threads = 1
timeout = {timeout}

[datasets.gaussian]
dim = 4
n_train = 256
n_eval = 256

[benchmarks.usage]
datasets = ["gaussian"]
train_steps = 2
batch = 32
{extra}
""")
    return path


def rows_of(store_path: Path, run_id: str):
    with ResultStore(store_path, readonly=True) as st:
        return st.rows(run_id), st.run_info(run_id)
