"""Command-line options for the executors, shared by ``vqbench run``, ``nightly`` and ``compare``."""

from __future__ import annotations

import argparse
from typing import Any

from . import EXECUTOR_REGISTRY, parse_sbatch


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """``--executor``, ``--workers`` and the Slurm and Ray settings (over a profile's ``[executor]``)."""
    group = parser.add_argument_group(
        "executor", "where the cells run (over the profile's [executor] table; see the README)"
    )
    group.add_argument(
        "--executor",
        choices=list(EXECUTOR_REGISTRY.specs()),
        default=None,
        help="local worker processes (default), Slurm jobs through submitit, or Ray actors",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes, Slurm jobs or Ray actors (local default: one per visible GPU on CUDA)",
    )
    group.add_argument("--partition", default=None, help="slurm: partition")
    group.add_argument("--account", default=None, help="slurm: account")
    group.add_argument(
        "--time-limit", type=int, default=None, metavar="MINUTES", help="slurm: time limit of each job"
    )
    group.add_argument("--gpus-per-job", type=int, default=None, metavar="N", help="slurm: GPUs per job")
    group.add_argument("--cpus-per-job", type=int, default=None, metavar="N", help="slurm: CPUs per job")
    group.add_argument(
        "--sbatch",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="slurm: an extra sbatch option, e.g. qos=high or constraint=h100 (repeatable)",
    )
    group.add_argument("--job-folder", default=None, metavar="DIR", help="slurm: job logs (shared folder)")
    group.add_argument(
        "--address",
        default=None,
        help="ray: an existing cluster ('auto', 'ray://head:10001'); default: a local cluster",
    )


def executor_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The executor options that were given, as settings overrides (empty when none)."""
    given = {
        "kind": args.executor,
        "partition": args.partition,
        "account": args.account,
        "time_limit": args.time_limit,
        "gpus_per_job": args.gpus_per_job,
        "cpus_per_job": args.cpus_per_job,
        "sbatch": parse_sbatch(args.sbatch),
        "folder": args.job_folder,
        "address": args.address,
    }
    return {k: v for k, v in given.items() if v is not None}


__all__ = ["add_executor_options", "executor_overrides"]
