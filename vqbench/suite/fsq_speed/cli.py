"""The command line of the FSQ speed benchmark: ``python -m vqbench.suite.fsq_speed``."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

import torch

from .common import DESCRIPTION, SECTIONS
from .run import run
from .table import print_result


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m vqbench.suite.fsq_speed``; exit 0 when every goal is met, else 1."""
    parser = argparse.ArgumentParser(prog="python -m vqbench.suite.fsq_speed", description=DESCRIPTION)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's current)")
    parser.add_argument("--vectors", type=int, default=1_000_000, help="vectors for the headline ratios")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds per contender")
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds per timing block (CPU)")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, among {','.join(SECTIONS)} (inference always runs)",
    )
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled contenders")
    parser.add_argument(
        "--per-call-rounds", type=int, default=21, help="interleaved rounds of the per-call section"
    )
    parser.add_argument("--quick", action="store_true", help="one round, a short sweep (a smoke run)")
    parser.add_argument("--json", default=None, help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.vectors < 1:
        parser.error(f"--vectors must be >= 1, got {args.vectors}")
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--sections: unknown {unknown}; expected some of {','.join(SECTIONS)}")
    options: dict[str, Any] = dict(
        device=args.device,
        threads=args.threads,
        vectors=args.vectors,
        rounds=args.rounds,
        min_run_time=args.min_run_time,
        sections=sections,
        compiled=not args.no_compile,
        per_call_rounds=args.per_call_rounds,
    )
    if args.per_call_rounds < 1:
        parser.error(f"--per-call-rounds must be >= 1, got {args.per_call_rounds}")
    if args.quick:
        options.update(
            rounds=1,
            min_run_time=min(args.min_run_time, 0.1),
            sweep=(2**12, 2**16),
            per_call_rounds=3,
            per_call_sizes=(16, 4096),
        )
    result = run(**options)
    print_result(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(
                {**result, "figures": [asdict(f) for f in result["figures"]]}, fh, indent=2, default=str
            )
    return 0 if all(g["met"] for g in result["goals"]) else 1


__all__ = ["main"]
