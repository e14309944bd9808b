"""Training to a plateau, the no-quantizer ceiling, and the two VQ baselines."""

from __future__ import annotations

import pytest
import torch

from vqbench.datasets import load_dataset
from vqbench.quantizers import create_quantizer, list_quantizers
from vqbench.suite import reconstruction, usage
from vqbench.suite.cells import NO_QUANTIZER, Cell
from vqbench.suite.checks import build_facts
from vqbench.suite.convergence import Plateau, split_monitor
from vqbench.suite.expand import expand_profile
from vqbench.suite.profiles import parse_profile
from vqbench.suite.training import TrainingLoop


def _plateau(losses, utils, window=200, every=100, **kw) -> Plateau:
    p = Plateau(max_steps=10_000, eval_every=every, window=window, **kw)
    for i, (loss, util) in enumerate(zip(losses, utils, strict=True), start=1):
        p.record(i * every, loss=loss, utilization=util)
    return p


def test_plateau_needs_flat_loss_and_flat_utilization_over_the_window():
    assert not _plateau([1.0], [0.5]).check() == "converged"  # shorter than the window
    assert _plateau([1.0, 0.999, 0.998], [0.5, 0.5, 0.5]).check() == "converged"
    assert not _plateau([1.0, 0.9, 0.8], [0.5, 0.5, 0.5]).check() == "converged"  # loss still falling 20%
    assert not _plateau([1.0, 1.0, 1.0], [0.2, 0.3, 0.4]).check() == "converged"  # usage still climbing
    assert not _plateau([1.0, 1.0, 1.0], [0.5, 0.5, 0.5], min_steps=1000).check() == "converged"


def test_plateau_compares_the_best_loss_so_noise_does_not_end_training_early():
    # the latest point is noisy-high but the best of the window is 20% below the best before it
    assert not _plateau([1.0, 0.8, 0.95], [0.5, 0.5, 0.5]).check() == "converged"
    # a noisy dip before the window: nothing in the window beats it, so the loss is flat
    assert _plateau([0.9, 1.0, 0.95, 0.97], [0.5] * 4).check() == "converged"


def test_each_plateau_cuts_the_rate_until_the_last_one_converges():
    p = Plateau(max_steps=10_000, eval_every=100, window=200, lr_cuts=2, lr_decay=0.5)
    actions = []
    for i, loss in enumerate([1.0, 0.995, 0.995, 0.8, 0.79, 0.79, 0.79, 0.79], start=1):
        p.record(i * 100, loss=loss, utilization=0.5)
        actions.append(p.check())
    # flat at 300 -> cut; the window restarts there: 400 is too soon, 500 and 600 still falling,
    # 700 flat since 500 -> second cut, then a whole window again before converging
    assert actions == ["train", "train", "cut", "train", "train", "train", "cut", "train"]
    assert p.cuts == [300, 700] and not p.converged()
    p.record(900, loss=0.79, utilization=0.5)
    assert p.check() == "converged" and p.converged()
    summary = p.summary(900)
    assert summary["lr_cut_steps"] == [300, 700] and summary["converged"] is True
    assert summary["criterion"]["lr_cuts"] == 2 and summary["criterion"]["lr_decay"] == 0.5


def test_no_rate_cut_while_utilization_still_moves():
    p = Plateau(max_steps=10_000, eval_every=100, window=200, lr_cuts=1)
    actions = []
    for i, util in enumerate([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], start=1):
        p.record(i * 100, loss=1.0, utilization=util)  # the loss is flat from the start
        actions.append(p.check())
    assert actions == ["train"] * 6 and p.cuts == []  # utilization still climbing: no cut
    assert p.moving() == ["utilization"]
    p.record(700, loss=1.0, utilization=0.6)
    p.record(800, loss=1.0, utilization=0.6)
    assert p.check() == "cut" and p.cuts == [800]
    p.record(900, loss=1.0, utilization=0.6)
    p.record(1000, loss=1.0, utilization=0.6)
    assert p.check() == "converged" and p.converged()


def test_no_rate_cut_while_perplexity_still_moves():
    p = Plateau(max_steps=10_000, eval_every=100, window=200, lr_cuts=1, perplexity_tol=0.05)
    for i, ppl in enumerate([10, 20, 30, 40], start=1):
        p.record(i * 100, loss=1.0, utilization=0.5, perplexity=ppl)
        assert p.check() == "train"
    assert p.moving() == ["perplexity"]
    p.record(500, loss=1.0, utilization=0.5, perplexity=40.5)
    p.record(600, loss=1.0, utilization=0.5, perplexity=41)
    assert p.check() == "cut"


def test_a_cell_stopped_by_the_cap_is_not_converged_even_if_flat_at_the_end():
    p = Plateau(max_steps=300, eval_every=100, window=200)
    for i, util in enumerate([0.1, 0.5, 0.5], start=1):
        p.record(i * 100, loss=1.0, utilization=util)  # the engines check only before the cap
    summary = p.summary(300)
    assert summary["converged"] is False and summary["stopped_by"] == "cap"
    assert summary["moving_at_end"] == ["utilization"]


def test_the_engine_does_not_cut_while_utilization_climbs():
    """A reconstruction run whose loss plateaus early: every cut falls where utilization is flat."""
    images = torch.zeros(320, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    corners = torch.randint(0, 5, (320, 2), generator=g)
    for i, (r, c) in enumerate(corners.tolist()):
        images[i, 0, r : r + 3, c : c + 3] = 1.0
    from vqbench.datasets._base import make_dataset

    data = make_dataset("blobs", "images", images[:256], images[256:])
    params = {
        "train_steps": 600,
        "batch": 16,
        "channels": 8,
        "eval_every": 50,
        "plateau_window": 100,
        "loss_tol": 0.5,
        "util_tol": 0.02,
        "lr_cuts": 2,
        "monitor_samples": 25,
        "reconstructions": 0,
    }
    cell = Cell("t", "reconstruction", "fsq", {"levels": [4, 4, 4]}, "blobs", {}, params=params)
    rows = {r["metric"]: r for r in reconstruction.measure(cell, data=data)}
    info = rows["train_steps"]["extra"]
    steps, util = info["curve"]["step"], info["curve"]["utilization"]
    for cut in info["lr_cut_steps"]:
        now = util[steps.index(cut)]
        then = util[steps.index(cut - 100)]
        assert abs(now - then) <= 0.02 * max(now, then)
    # the run is a real test: a rule reading the loss alone would have cut where utilization moved
    replay = Plateau(max_steps=600, eval_every=50, window=100, loss_tol=0.5, util_tol=0.02)
    loss_only = []
    for step, loss, u in zip(steps, info["curve"]["loss"], util, strict=True):
        replay.record(step, loss=loss, utilization=u)
        if replay._flat("loss") and not replay._flat("utilization"):
            loss_only.append(step)
    assert loss_only and not set(loss_only) & set(info["lr_cut_steps"])
    if not info["converged"]:
        assert info["stopped_by"] == "cap" and "utilization" in info["moving_at_end"]


def test_lr_decay_outside_zero_to_one_is_refused():
    base = {
        "eval_every": 100,
        "plateau_window": 200,
        "min_steps": 0,
        "loss_tol": 0.01,
        "util_tol": 0.01,
        "lr_cuts": 1,
    }
    for bad in (0, 1, 1.5, -0.2, True, "0.2"):
        with pytest.raises(ValueError, match="lr_decay"):
            Plateau.from_params({**base, "lr_decay": bad}, 1000)
    assert Plateau.from_params({**base, "lr_decay": 0.1}, 1000).lr_decay == 0.1


def test_chunks_reach_the_cap_and_summary_keeps_the_curve():
    p = Plateau(max_steps=250, eval_every=100)
    assert p.chunks() == [100, 100, 50]
    assert Plateau(max_steps=250, eval_every=0).chunks() == [250]
    p.record(100, loss=1.0, utilization=0.25, psnr=12.0)
    summary = p.summary(250)
    assert summary["steps_taken"] == 250 and summary["converged"] is False
    assert summary["curve"] == {"step": [100], "loss": [1.0], "utilization": [0.25], "psnr": [12.0]}


def test_split_monitor_holds_out_rows_of_the_train_split():
    x = torch.arange(100.0).unsqueeze(1)
    train, monitor = split_monitor(x, 8, seed=0)
    assert monitor.shape[0] == 8 and train.shape[0] == 92
    assert set(train[:, 0].tolist()).isdisjoint(monitor[:, 0].tolist())
    assert split_monitor(x, 0, seed=0)[1] is None


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _recon(quantizer, config, **params):
    base = {
        "train_steps": 300,
        "batch": 32,
        "channels": 8,
        "reconstructions": 0,
        "eval_every": 50,
        "plateau_window": 100,
        "monitor_samples": 128,
    }
    cell = Cell(
        suite="t",
        benchmark="reconstruction",
        quantizer=quantizer,
        config=config,
        dataset="digits",
        params={**base, **params},
    )
    return cell


def test_reconstruction_stops_at_the_plateau_and_records_the_curve(digits):
    loose = _recon("fsq", {"codebook_size": 256}, loss_tol=10.0, util_tol=10.0)
    rows = {r["metric"]: r for r in reconstruction.measure(loose, digits)}
    steps = rows["train_steps"]
    # the first check with a point a whole window (100 steps) earlier: every change is within tolerance
    assert steps["value"] == 150 and steps["extra"]["converged"] is True
    curve = steps["extra"]["curve"]
    assert curve["step"] == [50, 100, 150] and len(curve["psnr"]) == len(curve["utilization"]) == 3
    assert rows["utilization"]["extra"]["steps"] == 150 and rows["psnr"]["extra"]["converged"] is True
    strict = _recon("fsq", {"codebook_size": 256}, loss_tol=0.0, util_tol=0.0, train_steps=200)
    rows = {r["metric"]: r for r in reconstruction.measure(strict, digits)}
    assert rows["train_steps"]["value"] == 200 and rows["train_steps"]["extra"]["converged"] is False


def test_reconstruction_cuts_the_learning_rate_at_plateaus(digits):
    cell = _recon(
        "fsq", {"codebook_size": 256}, loss_tol=10.0, util_tol=10.0, lr_cuts=1, lr_decay=0.1, lr=1e-3
    )
    steps = {r["metric"]: r for r in reconstruction.measure(cell, digits)}["train_steps"]
    # plateau at 150 (a window after 50) -> cut; converged a window later, at 250
    assert steps["extra"]["lr_cut_steps"] == [150] and steps["value"] == 250
    assert steps["extra"]["converged"] is True
    assert steps["extra"]["curve"]["lr"] == pytest.approx([1e-3, 1e-3, 1e-3, 1e-4, 1e-4])


def test_the_ceiling_has_its_own_step_cap(digits):
    params = {"train_steps": 50, "ceiling_steps": 150, "loss_tol": 0.0, "util_tol": 0.0}

    def run(quantizer, config):
        return {r["metric"]: r for r in reconstruction.measure(_recon(quantizer, config, **params), digits)}

    ceiling, fsq = run(NO_QUANTIZER, {}), run("fsq", {"codebook_size": 256})
    assert ceiling["train_steps"]["value"] == 150 and ceiling["train_steps"]["extra"]["step_cap"] == 150
    assert fsq["train_steps"]["value"] == 50


def test_the_ceiling_trains_the_same_autoencoder_without_a_quantizer(digits):
    rows = {r["metric"]: r for r in reconstruction.measure(_recon(NO_QUANTIZER, {}, train_steps=100), digits)}
    assert {"psnr", "mse", "train_steps"} <= set(rows)
    assert not {"utilization", "bits_per_token"} & set(rows)  # no codes, no rate
    assert (
        rows["psnr"]["extra"]["ceiling"]
        and rows["psnr"]["value"] > rows["mse_untrained"]["extra"]["psnr_untrained"]
    )
    assert NO_QUANTIZER not in list_quantizers()


def test_usage_records_steps_and_its_curve(digits):
    params = {"train_steps": 200, "eval_every": 50, "plateau_window": 100, "monitor_samples": 512}
    cell = Cell(
        suite="t",
        benchmark="usage",
        quantizer="fsq",
        config={"codebook_size": 256},
        dataset="digits",
        params=params,
    )
    rows = {r["metric"]: r for r in usage.measure(cell, digits)}
    assert rows["train_steps"]["extra"]["curve"]["step"][-1] == rows["train_steps"]["value"]
    assert "converged" in rows["utilization"]["extra"]


SWEEP = """
[suite]
seeds = [0, 1]
[benchmarks.rd]
kind = "reconstruction"
datasets = ["digits"]
codebook_sizes = [256, 1024]
[benchmarks.grid]
kind = "reconstruction"
datasets = ["digits"]
steps = 10
"""


def test_every_reconstruction_sweep_gets_a_ceiling_per_seed():
    plan = expand_profile(
        parse_profile(__import__("tomllib").loads(SWEEP)), quantizers="fsq,vq", backends="eager"
    )
    ceiling = [c for c in plan.cells if c.quantizer == NO_QUANTIZER]
    assert sorted(c.seed for c in ceiling) == [0, 1]  # the grid benchmark (one size) gets none
    assert all(c.config == {} and c.backend == "eager" for c in ceiling)
    # the ceiling trains at the widest native width of its sweep (vq: codebook_dim 8 > fsq's 4)
    assert all(c.params["latent_dim"] == 8 and "widest" in c.params["ceiling_width_note"] for c in ceiling)
    assert build_facts(plan.cells)  # the checks before a run accept it


def test_vq_plain_is_vq_without_restarts_or_kmeans():
    plain = create_quantizer("vq-plain", dim=8, codebook_size=512)
    assert plain.config["threshold_ema_dead_code"] == 0 and plain.config["kmeans_init"] is False
    assert "vq-plain" in list_quantizers(default_only=True)


def test_vq_dead_code_threshold_scales_with_tokens_per_code():
    vq = create_quantizer("vq", dim=8, codebook_size=4096)
    vq.train()
    vq(torch.randn(1568, 8))
    assert vq.dead_code_threshold == 2  # the first batch re-seeds every code from data
    vq(torch.randn(1568, 8))
    assert vq.dead_code_threshold == pytest.approx(0.25 * 1568 / 4096)
    small = create_quantizer("vq", dim=8, codebook_size=256)
    small.train()
    for _ in range(2):
        small(torch.randn(4096, 8))
    assert small.dead_code_threshold == 2  # capped at the configured count
    fixed = create_quantizer("vq", dim=8, codebook_size=4096, dead_code_share=None)
    fixed.train()
    for _ in range(2):
        fixed(torch.randn(1568, 8))
    assert fixed.dead_code_threshold == 2
    with pytest.raises(ValueError, match="dead_code_share"):
        create_quantizer("vq", dead_code_share=-1)


# -- the training loop both engines share --------------------------------------------------------
def _loop(losses=None, optimizer=True, held_out=True, cap=30, every=10):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    calls = {"forward": 0, "held_out": 0}

    def loss_of(x):
        calls["forward"] += 1
        loss = (model(x) - x).square().mean()
        if losses is not None:
            loss = loss * losses(calls["forward"])
        return loss, None

    def monitor():
        calls["held_out"] += 1
        return {"loss": 1.0, "utilization": 0.5}

    loop = TrainingLoop(
        loss_of,
        torch.randn(64, 4),
        Plateau(max_steps=cap, eval_every=every, window=1000),
        batch=8,
        seed=0,
        device=torch.device("cpu"),
        precision="float32",
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2) if optimizer else None,
        lr=1e-2,
        aux_loss_weight=1.0,
        held_out=monitor if held_out else None,
    )
    return loop, model, calls


def test_the_training_loop_checks_below_the_cap_and_records_the_end_once():
    loop, _, calls = _loop()
    loop.run()
    assert loop.steps == 30 and calls["forward"] == 30 and calls["held_out"] == 2  # at 10 and 20
    loop.record_end()
    loop.record_end()
    assert [p["step"] for p in loop.plateau.curve] == [10, 20, 30] and calls["held_out"] == 3
    assert loop.final_loss is not None and loop.train_s > 0
    assert loop.summary()["steps_taken"] == 30 and loop.summary()["converged"] is False


def test_the_training_loop_without_an_optimizer_runs_the_steps_and_changes_nothing():
    loop, model, calls = _loop(optimizer=False, held_out=False)
    before = [p.detach().clone() for p in model.parameters()]
    loop.run()
    loop.record_end()
    assert loop.steps == 30 and calls["forward"] == 30 and loop.plateau.curve == []
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_the_training_loop_stops_when_the_loss_diverges():
    loop, _, _ = _loop(losses=lambda step: float("nan") if step > 12 else 1.0)
    with pytest.raises(FloatingPointError, match="diverged.*after 20 steps"):
        loop.run()
