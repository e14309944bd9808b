"""The contenders of the FSQ speed benchmark: upstream FSQ eager and compiled, and vqbench's FSQ per path.

Each contender is a callable that runs one operation on inputs built once, and what to report about
it (the path that ran, whether it is compiled). The compiled ones use ``torch.compile`` in its
default mode, specialised to the one shape they are timed on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .common import COMPILED, MODEL_WIDTH, PER_CALL_OPS, SECTIONS, UPSTREAM


def upstream_fsq(levels: list[int], device: str) -> torch.nn.Module:
    from vector_quantize_pytorch import FSQ as UpstreamFSQ

    return UpstreamFSQ(levels).to(device)


def vqbench_fsq(levels: list[int], device: str, path: str = "auto") -> torch.nn.Module:
    from vqbench.quantizers.fsq import FSQ

    return FSQ(levels, backend=path).to(device)


def codes_of(out):
    """Codes of an FSQ call: ``(out, indices)`` of upstream and of vqbench's FSQ, or a named output."""
    return out[0]


def indices_of(out):
    return out[1]


@dataclass
class Contender:
    """A timed callable and what to report about it."""

    fn: Callable[[], object]
    module: torch.nn.Module | None = None  # read for vqbench's ``last_backend`` after the calls
    path: str = UPSTREAM
    compiled: bool = False


def path_of(c: Contender) -> str:
    if c.module is not None and hasattr(c.module, "last_backend"):
        return str(getattr(c.module, "last_backend", None) or "?")
    return c.path


def compile_static(fn):
    """``torch.compile`` in its default mode, specialised to the one shape it is timed on."""
    return torch.compile(fn, dynamic=False)


def _decode_path(name: str, device: str) -> str:
    """Which decode runs for vqbench's path ``name``: the fused kernel where one can run."""
    from vqbench.quantizers.fsq import cpu as cpu_kernel
    from vqbench.quantizers.fsq import triton as gpu_kernel

    if name == "reference":
        return "reference"
    if device == "cpu" and cpu_kernel.available():
        return "fsq_decode: C kernel"
    if device == "cuda" and gpu_kernel.available(device):
        return "fsq_decode: Triton"
    return "fsq_decode: torch"


def inputs(n: int, d: int, device: str, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(1, n, d, generator=gen) * 1.5).to(device)


def without_grad(fn: Callable[[], object]) -> Callable[[], object]:
    def run():
        with torch.no_grad():
            return fn()

    return run


def section_contenders(
    section: str, levels: list[int], n: int, device: str, paths: list[str], compiled: bool
):
    """The contenders of one section, levels and size (upstream eager, upstream compiled, vqbench)."""
    d = len(levels)
    up = upstream_fsq(levels, device)
    out: dict[str, Contender] = {}
    if section in ("inference", "encode"):
        x = inputs(n, d, device)
        pick = (lambda o: o) if section == "inference" else indices_of
        out[UPSTREAM] = Contender(without_grad(lambda: pick(up(x))))
        if compiled:
            step = compile_static(lambda t: pick(up(t)))
            out[COMPILED] = Contender(without_grad(lambda: step(x)), path=COMPILED, compiled=True)
        for name in paths:
            m = vqbench_fsq(levels, device, name)
            call = m.encode if section == "encode" else (lambda t, m=m: pick(m(t)))  # encode: no codes
            out[f"vqbench:{name}"] = Contender(without_grad(lambda call=call: call(x)), m)
    elif section == "decode":
        with torch.no_grad():
            idx = up(inputs(n, d, device))[1]
        out[UPSTREAM] = Contender(without_grad(lambda: up.indices_to_codes(idx)))
        if compiled:
            dec = compile_static(up.indices_to_codes)
            out[COMPILED] = Contender(without_grad(lambda: dec(idx)), path=COMPILED, compiled=True)
        for name in paths:
            m = vqbench_fsq(levels, device, name)
            fn = without_grad(lambda m=m: m.indices_to_codes(idx))
            out[f"vqbench:{name}"] = Contender(fn, path=_decode_path(name, device))
    elif section == "training":
        x = inputs(n, d, device).requires_grad_()
        grad = inputs(n, d, device, seed=1)

        def train(call):
            def step():
                x.grad = None
                codes_of(call(x)).backward(grad)

            return step

        out[UPSTREAM] = Contender(train(up.train()))
        if compiled:
            out[COMPILED] = Contender(train(compile_static(up)), path=COMPILED, compiled=True)
        for name in paths:
            m = vqbench_fsq(levels, device, name).train()
            out[f"vqbench:{name}"] = Contender(train(m), m)
    else:
        raise ValueError(f"unknown section {section!r}; expected one of {SECTIONS}")
    return out


class SmallModel(torch.nn.Module):
    """linear -> FSQ -> linear: the smallest model that puts a quantizer between two layers."""

    def __init__(self, fsq: torch.nn.Module, width: int, d: int) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(width, d)
        self.fsq = fsq
        self.decoder = torch.nn.Linear(d, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes, indices = self.fsq(self.encoder(x))[:2]
        return self.decoder(codes), indices


def model_contenders(levels: list[int], n: int, device: str, train: bool) -> dict[str, Contender]:
    """Both models compiled whole (same seed, same weights); vqbench's must run its fused operator."""
    out = {}
    x = inputs(n, MODEL_WIDTH, device, seed=2)
    grad = inputs(n, MODEL_WIDTH, device, seed=3)
    for name, fsq in (
        (COMPILED, upstream_fsq(levels, device)),
        ("vqbench-compiled", vqbench_fsq(levels, device)),
    ):
        torch.manual_seed(0)
        model = SmallModel(fsq, MODEL_WIDTH, len(levels)).to(device)
        model.train(train)
        compiled = compile_static(model)
        if train:

            def fn(c=compiled, m=model):
                m.zero_grad(set_to_none=True)
                c(x)[0].backward(grad)

        else:
            fn = without_grad(lambda c=compiled: c(x))
        out[name] = Contender(fn, path=name, compiled=True)
    return out


def per_call_contenders(op: str, levels: list[int], n: int, device: str, compiled: bool):
    """vqbench (auto), eager upstream and compiled upstream for one operation at one size."""
    d = len(levels)
    x = inputs(n, d, device).requires_grad_()
    grad = inputs(n, d, device, seed=1)
    modules = {UPSTREAM: upstream_fsq(levels, device).train(), "vqbench": vqbench_fsq(levels, device).train()}
    calls: dict[str, Callable] = dict(modules)
    if compiled:
        calls[COMPILED] = compile_static(modules[UPSTREAM])
    out = {}
    for name, call in calls.items():
        if op == "forward-grad":

            def fn(call=call):
                return call(x)

        elif op == "training":

            def fn(call=call):
                x.grad = None
                codes_of(call(x)).backward(grad)

        else:
            raise ValueError(f"unknown per-call operation {op!r}; expected one of {PER_CALL_OPS}")
        module = modules.get(name) if name == "vqbench" else None
        out[name] = Contender(fn, module, path=name, compiled=name == COMPILED)
    return out


def cuda_contenders(op: str, levels: list[int], n: int):
    """vqbench (auto) and compiled upstream (and eager upstream) for one CUDA operation."""
    d = len(levels)
    x = inputs(n, d, "cuda")
    xg = x.clone().requires_grad_()
    grad = inputs(n, d, "cuda", seed=1)
    up, ours = upstream_fsq(levels, "cuda").train(), vqbench_fsq(levels, "cuda").train()
    with torch.no_grad():
        idx = up(x)[1]

    def make(m, compile_it: bool):
        if op == "inference":
            call = compile_static(m) if compile_it else m
            return without_grad(lambda: call(x))
        if op == "encode":
            enc = getattr(m, "encode", None) or (lambda t: m(t)[1])
            call = compile_static(enc) if compile_it else enc
            return without_grad(lambda: call(x))
        if op == "decode":
            call = compile_static(m.indices_to_codes) if compile_it else m.indices_to_codes
            return without_grad(lambda: call(idx))
        call = compile_static(m) if compile_it else m
        if op == "forward-grad":
            return lambda: call(xg)

        def step():
            xg.grad = None
            codes_of(call(xg)).backward(grad)

        return step

    return {
        "vqbench": Contender(make(ours, False), ours, path="vqbench"),
        UPSTREAM: Contender(make(up, False)),
        COMPILED: Contender(make(up, True), path=COMPILED, compiled=True),
    }


__all__ = [
    "Contender",
    "SmallModel",
    "codes_of",
    "compile_static",
    "cuda_contenders",
    "indices_of",
    "inputs",
    "model_contenders",
    "path_of",
    "per_call_contenders",
    "section_contenders",
    "upstream_fsq",
    "vqbench_fsq",
    "without_grad",
]
