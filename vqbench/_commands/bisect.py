"""Find the commit that slowed a figure: bisect between a good and a bad revision of a git repository.

Each revision is checked out into a temporary git worktree. A candidate quantizer's file is taken
from that revision (``--quantizer path/in/repo.py:Name``); when the repository is vqbench's own, the
revision's source is put first on the path, so a registered name runs that revision's code. The
figure (``--figure forward.relative_time@65536``: operation and size) is timed as the nightly
times it, interleaved with the control workload, in a fresh process per revision, alternating with
GOOD's processes; a revision is bad when its relative time is slower than GOOD's by more than the
gate's relative-time threshold and a one-sided Mann-Whitney test on the per-round samples says
slower (p < 0.01), the same tests the nightly gate applies.

Examples:
  vqbench bisect v1.2 HEAD --repo ../my-quantizer --quantizer my_quantizer.py:MyVQ
  vqbench bisect 3f2a1c9 main --quantizer fsq --figure encode.relative_time@65536
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from vqbench.errors import UserError

# Runs in a fresh interpreter with the revision's source first on the path; it uses only the API
# that every vqbench revision with interleaved timing has.
_WORKER = """
import json, sys
import torch
from vqbench.quantizers import create_quantizer
from vqbench.suite.throughput import Operations, gaussian_input
from vqbench.suite.timing import control_workload, time_interleaved
spec = json.loads(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(1)
q = create_quantizer(spec["quantizer"], **spec["config"])
x = gaussian_input(spec["size"], q.dim, generator=torch.Generator().manual_seed(0))
ops = Operations(q, q, x, compiled=False)
t = time_interleaved(ops.fn(spec["operation"]), control_workload(), threads=1,
                     min_run_time=spec["min_run_time"], rounds=spec["rounds"])
print(json.dumps(list(t.ratios)))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vqbench bisect``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("good", metavar="GOOD", help="a revision where the figure was fast")
    parser.add_argument("bad", metavar="BAD", help="a later revision where it is slow")
    parser.add_argument("--repo", default=".", metavar="DIR", help="the git repository (default: .)")
    parser.add_argument(
        "--quantizer",
        required=True,
        metavar="REF",
        help="path/in/repo.py:Name (taken from each revision) or a registered name",
    )
    parser.add_argument(
        "--config", default="{}", metavar="JSON", help="quantizer config, e.g. '{\"codebook_size\": 1024}'"
    )
    parser.add_argument(
        "--figure",
        default="forward.relative_time@65536",
        metavar="METRIC",
        help="the slowed figure, OPERATION.relative_time@SIZE (default: forward.relative_time@65536)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, metavar="N", help="processes per revision and GOOD (default: 3)"
    )


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(f"git {' '.join(args)} in {repo} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def _spec(args: argparse.Namespace) -> dict:
    from vqbench.results.vocabulary import parse_metric

    parsed = parse_metric(args.figure)
    if parsed.figure != "relative_time" or not parsed.operation or not parsed.size:
        raise UserError(f"--figure must be OPERATION.relative_time@SIZE, got {args.figure!r}")
    if parsed.operation not in ("forward", "train", "encode", "decode"):
        raise UserError(
            f"--figure's operation must be forward, train, encode or decode, got {parsed.operation!r}"
        )
    try:
        config = json.loads(args.config)
    except ValueError as exc:
        raise UserError(f"--config must be a JSON object, got {args.config!r}: {exc}") from exc
    if not isinstance(config, dict):
        raise UserError(f"--config must be a JSON object, got {args.config!r}")
    if args.rounds < 2:
        raise UserError(f"--rounds must be >= 2, got {args.rounds}")
    return {
        "operation": parsed.operation,
        "size": int(parsed.size),
        "config": config,
        "rounds": 9,
        "min_run_time": 0.3,
    }


class Bisection:
    """Revisions checked out on demand, each timed against GOOD in alternating processes."""

    def __init__(self, repo: Path, quantizer: str, spec: dict, rounds: int, folder: Path) -> None:
        self.repo, self.quantizer, self.spec, self.rounds, self.folder = repo, quantizer, spec, rounds, folder
        self.trees: dict[str, Path] = {}
        self.own = (repo / "vqbench" / "__init__.py").is_file()

    def tree(self, sha: str) -> Path:
        if sha not in self.trees:
            path = self.folder / sha[:12]
            _git(self.repo, "worktree", "add", "--detach", str(path), sha)
            self.trees[sha] = path
        return self.trees[sha]

    def _run(self, sha: str) -> list[float]:
        tree = self.tree(sha)
        ref = self.quantizer
        if ".py:" in ref and not Path(ref.split(".py:")[0] + ".py").is_absolute():
            ref = str(tree / ref)
        env = dict(os.environ)
        if self.own:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), env.get("PYTHONPATH")) if p)
        done = subprocess.run(
            [sys.executable, "-c", _WORKER, json.dumps({**self.spec, "quantizer": ref})],
            capture_output=True,
            text=True,
            env=env,
        )
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise UserError(f"timing {self.quantizer} at {sha[:12]} failed: {tail[0]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def compare(self, good: str, sha: str) -> dict:
        """Time ``sha`` against ``good`` (ABBA order over processes); the gate's tests decide."""
        from vqbench.reports.statistics import median, slower_p_value
        from vqbench.reports.thresholds import relative_time_threshold
        from vqbench.reports.timing_gate import ALPHA

        base, cand = [], []
        for r in range(self.rounds):
            for which in (good, sha) if r % 2 == 0 else (sha, good):
                (base if which == good else cand).extend(self._run(which))
        change = median(cand) / median(base) - 1
        p = slower_p_value(cand, base)
        threshold = relative_time_threshold()
        return {"sha": sha, "change": change, "p": p, "bad": change > threshold and p < ALPHA}

    def close(self) -> None:
        for path in self.trees.values():
            subprocess.run(["git", "-C", str(self.repo), "worktree", "remove", "--force", str(path)])
        subprocess.run(["git", "-C", str(self.repo), "worktree", "prune"])


def bisect(repo: Path, good: str, bad: str, quantizer: str, spec: dict, rounds: int, say=print) -> dict:
    """The first commit after ``good`` on the way to ``bad`` whose figure is slower than at ``good``."""
    good_sha = _git(repo, "rev-parse", "--verify", f"{good}^{{commit}}")
    bad_sha = _git(repo, "rev-parse", "--verify", f"{bad}^{{commit}}")
    commits = _git(repo, "rev-list", "--reverse", "--ancestry-path", f"{good_sha}..{bad_sha}").split()
    if not commits:
        raise UserError(f"{bad} is not a descendant of {good}: nothing to bisect")
    tested = []
    with tempfile.TemporaryDirectory(prefix="vqbench-bisect-") as folder:
        work = Bisection(repo, quantizer, spec, rounds, Path(folder))
        try:
            verdict = work.compare(good_sha, bad_sha)
            tested.append(verdict)
            say(_line(verdict, repo))
            if not verdict["bad"]:
                return {"first_bad": None, "tested": tested}
            lo, hi = -1, len(commits) - 1
            while hi - lo > 1:
                mid = (lo + hi) // 2
                verdict = work.compare(good_sha, commits[mid])
                tested.append(verdict)
                say(_line(verdict, repo))
                lo, hi = (lo, mid) if verdict["bad"] else (mid, hi)
        finally:
            work.close()
    return {"first_bad": commits[hi], "tested": tested}


def _line(verdict: dict, repo: Path) -> str:
    subject = _git(repo, "log", "-1", "--format=%s", verdict["sha"])
    word = "bad " if verdict["bad"] else "good"
    return f"{word} {verdict['sha'][:12]} {verdict['change'] * 100:+.1f}% p={verdict['p']:.2g}  {subject}"


def run(args: argparse.Namespace) -> int:
    """Bisect; print each tested revision and the first bad one. 0 when found, 1 when BAD is not slower."""
    from vqbench._console import make_console

    repo = Path(args.repo).resolve()
    if not (repo / ".git").exists():
        raise UserError(f"--repo must be a git repository, got {args.repo!r} (no .git there)")
    spec = _spec(args)
    console = make_console()
    out = bisect(repo, args.good, args.bad, args.quantizer, spec, args.rounds, say=console.out)
    if out["first_bad"] is None:
        console.out(f"{args.bad} is not slower than {args.good} on {args.figure}: nothing to bisect")
        return 1
    subject = _git(repo, "log", "-1", "--format=%s", out["first_bad"])
    console.out(f"first bad commit: {out['first_bad']} {subject}")
    return 0
