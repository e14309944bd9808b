"""Does the nightly gate cry wolf on a busy machine, and does it still catch real regressions?

Runs `vqbench nightly` on a small throughput + usage profile, night after night, in a scratch folder,
with a CPU-heavy background load (busy processes, one per core) switched on or off before each night:

1. ``--history`` nights of unchanged code build the history;
2. ``--nights`` more nights of unchanged code: every alarm here is a false alarm;
3. ``--trials`` nights with the forward of one quantizer (``slowable``) made 1.5x slower, each gated
   against a copy of the clean history: each must be caught, with only that quantizer named;
4. ``--trials`` nights with that quantizer's utilization cut: each must be caught.

Usage:  python benchmarks/gate_noise.py [--nights 10] [--history 4] [--trials 3] [--seed 0]
Prints one line per night and a summary; exits 1 when the goal (0 false alarms, every injection
caught and only the culprit named) is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PLUGIN = '''
"""Quantizers for the gate harness: an FSQ whose forward can be slowed or whose usage can be cut."""
import os

import torch

from vqbench import create_quantizer


class Slowable(torch.nn.Module):
    """vqbench's FSQ; $GATE_SLOW=1.5 makes its forward do 1.5x the work, $GATE_COLLAPSE=1 squeezes
    its input so that fewer codes are used."""

    def __init__(self, codebook_size=256, **kw):
        super().__init__()
        self.inner = create_quantizer("fsq", codebook_size=codebook_size, **kw)
        self.dim, self.codebook_size = self.inner.dim, self.inner.codebook_size
        self.num_codebooks = getattr(self.inner, "num_codebooks", 1)
        self.bits_per_token = self.inner.bits_per_token
        self.slow = float(os.environ.get("GATE_SLOW", "1"))
        self.collapse = os.environ.get("GATE_COLLAPSE") == "1"

    def forward(self, x):
        if self.collapse:
            x = torch.tanh(x) * 0.25
        out = self.inner(x)
        extra = self.slow - 1.0
        while extra > 1e-9:  # the extra work: the same operation on a fraction of the input
            part = x[..., : max(1, round(x.shape[-2] * min(extra, 1.0))), :] if x.dim() > 1 else x
            self.inner(part)
            extra -= 1.0
        return out

    def indices_to_codes(self, indices):
        return self.inner.indices_to_codes(indices)


class Steady(Slowable):
    """The same quantizer, never slowed: an innocent bystander."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.slow, self.collapse = 1.0, False
'''

PROFILE = """
[suite]
description = "gate harness: tiny throughput and one usage cell"
quantizers = ["fsq", "vq", "{plugin}:Slowable", "{plugin}:Steady"]
devices = ["cpu"]
backends = ["eager"]
seeds = [0]
codebook_sizes = [256]
timeout = 120
workers = 1
threads = 1

[quantizers.vq]
codebook_dim = 8

[datasets.gaussian-mixture]
dim = 16
n_train = 2048
n_eval = 8192

[benchmarks.throughput]
sizes = [4096]
operations = ["forward", "encode", "decode"]
min_run_time = 0.1
memory = false

[benchmarks.usage]
datasets = ["gaussian-mixture"]
quantizers = ["{plugin}:Slowable"]
train_steps = 30
batch = 256
"""


def start_load(n: int) -> list[subprocess.Popen]:
    """``n`` busy processes (pure CPU)."""
    code = "import time\nwhile True:\n    sum(i * i for i in range(10000))\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def stop_load(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()


def night(folder: Path, store: Path, profile: Path, env_extra: dict, loaded: bool, label: str) -> dict:
    """One `vqbench nightly`; returns its summary with what it flagged."""
    env = {**os.environ, **env_extra}
    load = start_load(os.cpu_count() or 2) if loaded else []
    out = folder / "out" / label
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "vqbench.cli",
                "nightly",
                "--suite",
                str(profile),
                "--store",
                str(store),
                "--out",
                str(out),
                "--no-progress",
            ],
            env=env,
            capture_output=True,
            text=True,
            cwd=folder,
        )
    finally:
        stop_load(load)
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"night {label}: vqbench nightly exited {proc.returncode}")
    summary = json.loads((out / "summary.json").read_text())
    flagged = [(r["quantizer"].rsplit(":", 1)[-1], r["metric"]) for r in summary["regressions"]]
    remeasured = "re-measuring" in proc.stdout
    return {
        "label": label,
        "exit": proc.returncode,
        "loaded": loaded,
        "flagged": flagged,
        "remeasured": remeasured,
        "seconds": time.monotonic() - t0,
        "status": summary["status"],
    }


def show(res: dict) -> None:
    names = ", ".join(f"{q} {m}" for q, m in res["flagged"]) or "-"
    print(
        f"{res['label']:<14} load={'on ' if res['loaded'] else 'off'} exit={res['exit']} "
        f"re-measured={'yes' if res['remeasured'] else 'no '} {res['seconds']:5.0f}s flagged: {names}",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nights", type=int, default=10)
    ap.add_argument("--history", type=int, default=4)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the load on the way out
    folder = Path(tempfile.mkdtemp(prefix="vqbench-gate-"))
    plugin = folder / "gate_quantizers.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    profile = folder / "gate.toml"
    profile.write_text(PROFILE.format(plugin=plugin))
    store = folder / "results.sqlite"
    print(f"scratch folder: {folder}; load: {os.cpu_count()} busy processes on the 'on' nights", flush=True)
    try:
        for i in range(args.history):
            show(night(folder, store, profile, {}, i % 2 == 1, f"history {i + 1}"))
        false_alarms = 0
        for i in range(args.nights):
            res = night(folder, store, profile, {}, rng.random() < 0.5, f"unchanged {i + 1}")
            false_alarms += res["exit"] != 0
            show(res)
        clean = folder / "clean.sqlite"
        shutil.copy(store, clean)
        caught = {"slowdown": 0, "utilization": 0}
        named_only_culprit = 0
        for kind, env in (("slowdown", {"GATE_SLOW": "1.5"}), ("utilization", {"GATE_COLLAPSE": "1"})):
            for i in range(args.trials):
                trial = folder / f"{kind}-{i}.sqlite"
                shutil.copy(clean, trial)
                res = night(folder, trial, profile, env, rng.random() < 0.5, f"{kind} {i + 1}")
                show(res)
                culprit = [m for q, m in res["flagged"] if q == "Slowable"]
                others = [(q, m) for q, m in res["flagged"] if q != "Slowable"]
                if kind == "slowdown":
                    hit = any(m.startswith("forward.") for m in culprit)
                else:
                    hit = any("utilization" in m for m in culprit)
                caught[kind] += bool(hit and res["exit"] == 1)
                named_only_culprit += not others
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    total = 2 * args.trials
    print(
        f"\nunchanged nights: {args.nights}, false alarms: {false_alarms}\n"
        f"1.5x forward slowdown caught: {caught['slowdown']}/{args.trials}\n"
        f"utilization drop caught: {caught['utilization']}/{args.trials}\n"
        f"injected nights naming only the culprit: {named_only_culprit}/{total}"
    )
    ok = false_alarms == 0 and all(v == args.trials for v in caught.values()) and named_only_culprit == total
    print("GOAL MET" if ok else "GOAL MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
