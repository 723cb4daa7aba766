"""Issue 9: the pieces of a training job, tested without training (schedule, budget, eval points,
summary, checkpoint files, fault hooks), and the SIGTERM handler restored on every exit."""

import math
import signal

import numpy as np
import pytest
import torch

from conftest import tiny_config
from lrscale import checkpoint, config, faults, train
from lrscale.errors import UserError


def cfg(**sections):
    return config.validate(tiny_config(**sections))


# ---------------------------------------------------------------- schedule, budget, eval points
def test_lr_multiplier_cosine_with_warmup_hand_computed():
    mult = train.lr_multiplier({"name": "cosine", "warmup_steps": 2, "warmup_fraction": 0.5, "min_lr_ratio": 0.1}, 12)
    assert [mult(0), mult(1)] == [0.5, 1.0]  # linear warmup over updates 0, 1
    assert mult(2) == pytest.approx(1.0)  # peak right after warmup
    assert mult(7) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through the decay: cos(pi/2) = 0
    assert mult(12) == pytest.approx(0.1) and mult(50) == pytest.approx(0.1)  # floor, never below


def test_lr_multiplier_linear_constant_and_warmup_fraction():
    lin = train.lr_multiplier({"name": "linear", "warmup_steps": None, "warmup_fraction": 0.1, "min_lr_ratio": 0.0}, 100)
    assert [lin(s) for s in range(10)] == pytest.approx([(s + 1) / 10 for s in range(10)])  # round(0.1 * 100)
    assert lin(55) == pytest.approx(0.5) and lin(100) == 0.0
    const = train.lr_multiplier({"name": "constant", "warmup_steps": 5, "warmup_fraction": 0.5, "min_lr_ratio": 0.5}, 10)
    assert {const(s) for s in range(20)} == {1.0}  # constant ignores warmup and floor


def test_lr_multiplier_wsd_holds_the_peak_then_cools_down():
    wsd = {"name": "wsd", "warmup_steps": 2, "warmup_fraction": 0.0, "min_lr_ratio": 0.0, "cooldown_fraction": 0.25,
           "cooldown_shape": "linear"}
    lin = train.lr_multiplier(wsd, 20)
    assert [lin(0), lin(1)] == [0.5, 1.0] and {lin(s) for s in range(2, 15)} == {1.0}  # warmup, then stable
    assert [lin(s) for s in range(15, 20)] == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.0])  # updates 15..19 cool down
    root = train.lr_multiplier({**wsd, "cooldown_shape": "1-sqrt", "min_lr_ratio": 0.1}, 20)
    assert root(15) == pytest.approx(1 - 0.9 * math.sqrt(0.2)) and root(19) == pytest.approx(0.1)  # the last: floor
    with pytest.raises(UserError, match="8 warmup steps overlap the cool-down, which starts at update 5 of 20"):
        train.lr_multiplier({**wsd, "warmup_steps": 8, "cooldown_fraction": 0.75}, 20)
    with pytest.raises(UserError, match="'schedule.cooldown_fraction': 0.9 plus warmup_fraction 0.2 exceeds the run"):
        config.validate({"schedule": {"name": "wsd", "cooldown_fraction": 0.9, "warmup_fraction": 0.2}})
    c = config.validate({"schedule": {"name": "wsd"}})
    assert (c["schedule"]["cooldown_fraction"], c["schedule"]["cooldown_shape"]) == (0.2, "1-sqrt")
    # a cosine config keeps its hash: the wsd keys at their defaults stay out of the training config
    assert "cooldown_fraction" not in config.train_config(config.defaults())["schedule"]


def test_eval_steps_even_unique_last_included():
    assert train.eval_steps(100, 4) == [25, 50, 75, 100]
    assert train.eval_steps(10, 3) == [3, 7, 10]
    assert train.eval_steps(3, 50) == [1, 2, 3]  # more points than steps: every step once


@pytest.mark.parametrize("budget,b,tokens,steps", [
    ({"unit": "steps", "value": 77}, 512, None, 77),
    ({"unit": "samples", "value": 1000}, 64, None, 16),  # ceil(1000 / 64)
    ({"unit": "tokens", "value": 10_000}, 8, 16, 79),  # ceil(10000 / (8 * 16))
])
def test_num_steps_per_unit(budget, b, tokens, steps):
    c = cfg(task={"name": "char_lm"}, budget=budget)
    assert train.num_steps(c, b, tokens) == steps


def test_num_steps_tokens_needs_a_sequence_task():
    c = cfg(budget={"unit": "steps", "value": 10})
    c["budget"] = {"unit": "tokens", "value": 100}  # the config validator refuses it; the runner too
    with pytest.raises(UserError, match="budget.unit"):
        train.num_steps(c, 8, None)


# ---------------------------------------------------------------- divergence, summary, rates
def test_first_bad_step_judges_a_running_median():
    calm = torch.ones(40)
    spiky = calm.clone()
    spiky[[3, 10, 11, 30]] = 1e4  # heavy-tailed mini-batches: a few huge losses, never a majority
    assert train.first_bad_step(spiky, 0, 10.0, 16) is None
    blowup = calm.clone()
    blowup[20:] = 1e3  # every loss from update 20 on above the limit: the median crosses 8 updates later
    assert train.first_bad_step(blowup, 0, 10.0, 16) == 20 + 16 // 2
    early = torch.full((40,), 1e3)  # above the limit from the start: judged once the window is full
    assert train.first_bad_step(early, 0, 10.0, 16) == 15
    assert train.first_bad_step(early[:10], 0, 10.0, 16) is None  # window not yet full


def test_first_bad_step_non_finite_at_once_and_only_new_updates():
    losses = torch.ones(30)
    losses[17] = math.nan
    assert train.first_bad_step(losses, 0, 10.0, 16) == 17
    assert train.first_bad_step(losses, 18, 10.0, 16) is None  # judged before: not new
    losses[25] = math.inf
    assert train.first_bad_step(losses, 18, 10.0, 16) == 25
    assert train.first_bad_step(torch.tensor([1.0]), 0, -math.inf, 1) == 0  # a NaN reference: every full window
    nans = torch.full((20,), math.nan)
    assert train.first_bad_step(nans, 4, 10.0, 16) == 4  # NaN counts above every limit in the median too


def test_summarize_hand_computed():
    c = cfg(budget={"unit": "steps", "value": 4}, train={"eval_points": 2, "final_window": 0.5, "grad_clip": 1.5,
                                                         "convergence_threshold": 0.5})
    curves = {"step": [2, 4], "samples_seen": [16, 32], "train_loss": [3.0, 1.5], "val_loss": [2.5, 1.25],
              "learning_rate": [0.01, 0.0]}
    m = train.summarize(c, {"batch_size": 8, "lr": 0.01, "seed": 3}, curves, torch.tensor([4.0, 2.0, 2.0, 1.0]),
                        torch.tensor([1.0, 2.0, 3.0, 4.0]), 4, None, 4.0)
    assert m["name"] == "B8_LR0.010000" and (m["batch_size"], m["lr"], m["seed"]) == (8, 0.01, 3)
    assert m["final_train_loss"] == 1.5  # mean of the last 2 of 4 updates
    assert m["train_loss_std"] == pytest.approx(math.sqrt(0.5))  # std of [2, 1], n-1
    assert m["final_val_loss"] == 1.25  # the last 1 of 2 evals
    assert m["min_val_loss"] == 1.25 and m["initial_loss"] == 4.0
    assert m["converged"] is False  # std 0.707 >= threshold 0.5
    assert (m["num_steps"], m["planned_steps"], m["samples_seen"]) == (4, 4, 32)
    assert m["grad_norm"] == {"median": 2.0, "p95": pytest.approx(3.85), "max": 4.0, "clip": 1.5,
                              "clipped_fraction": 0.75}
    assert m["config"] == config.train_config(c) and m["config_hash"] == config.config_hash(c)


def test_summarize_diverged_run_has_no_final_losses():
    c = cfg(budget={"unit": "steps", "value": 10}, train={"eval_points": 5})
    curves = {"step": [2], "samples_seen": [16], "train_loss": [2.0], "val_loss": [1.5], "learning_rate": [0.1]}
    m = train.summarize(c, {"batch_size": 8, "lr": 0.1, "seed": 0}, curves, torch.tensor([2.0, 2.0, math.nan]),
                        torch.tensor([1.0, 1.0, math.nan]), 10, 3, 2.0)
    assert m["diverged"] is True and m["converged"] is False and m["diverged_at_step"] == 3
    assert m["final_train_loss"] is None and m["final_val_loss"] is None and m["train_loss_std"] is None
    assert m["num_steps"] == 3 and m["planned_steps"] == 10 and m["min_val_loss"] == 1.5
    assert m["grad_norm"]["clipped_fraction"] == 0.0  # no clipping configured
    assert m["overfit"] is None and m["epochs"] is None  # diverged; fresh data


def test_epochs_count_passes_over_the_training_set():
    c = cfg(budget={"unit": "steps", "value": 4}, train={"eval_points": 2, "final_window": 0.5})
    curves = {"step": [2, 4], "samples_seen": [16, 32], "train_loss": [3.0, 1.5], "val_loss": [2.5, 1.25],
              "learning_rate": [0.01, 0.0]}
    m = train.summarize(c, {"batch_size": 8, "lr": 0.01, "seed": 3}, curves, torch.tensor([4.0, 2.0, 2.0, 1.0]),
                        torch.tensor([1.0, 2.0, 3.0, 4.0]), 4, None, 4.0, train_samples=12.8)
    assert m["epochs"] == pytest.approx(2.5)  # 32 samples over a training set of 12.8
    assert m["overfit"] is None  # 2 eval points cannot tell a rise from noise


def test_overfit_is_a_rise_past_the_val_curves_own_noise():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 40)
    shapes = {"flat": 2.0 + 0 * t, "falling": 2.0 + np.exp(-5 * t), "u_shaped": 2.0 + 0.5 * (t - 0.5) ** 2}
    flagged = {name: np.mean([train.overfit(list(curve + rng.normal(0, 0.01, 40)), 4) for _ in range(200)])
               for name, curve in shapes.items()}
    assert flagged["flat"] <= 0.05 and flagged["falling"] <= 0.05  # noise alone is not overfitting
    assert flagged["u_shaped"] >= 0.95  # the val loss turns up by 0.11 (11 SDs): memorising
    assert train.overfit(list(2.0 + 1e-9 * t), 4) is False  # float jitter on a flat curve is no rise
    u_shaped = list(shapes["u_shaped"])
    assert train.overfit(u_shaped[:9], 4) is None and train.overfit(u_shaped[:-1] + [math.nan], 4) is None


def test_optimizer_co_scaling_rules_from_the_reference_batch_size():
    base = {"name": "adamw", "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0.1}
    rules = {"reference_batch_size": 64, "reference_lr": 1e-3, "beta2": True, "eps": True, "weight_decay": True}
    c = config.validate({"optimizer": {**base, "scale_with_batch": rules}, "budget": {"unit": "samples", "value": 6400}})
    at_ref = train.scaled_optimizer(c, 64, 1e-3, None)
    assert set(at_ref) == set(config.defaults()["optimizer"]) - {"scale_with_batch"}  # what make_optimizer reads
    assert (at_ref["betas"], at_ref["eps"], at_ref["weight_decay"]) == ([0.9, 0.99], 1e-8, pytest.approx(0.1))
    big = train.scaled_optimizer(c, 256, 2e-3, None)
    assert big["betas"] == [0.9, pytest.approx(0.99**4)]  # the same half-life in samples: 4x the batch, 4 steps' decay
    assert big["eps"] == pytest.approx(0.5e-8)  # ε ∝ B^-1/2
    assert big["weight_decay"] == pytest.approx(0.1 * 4 * 0.5)  # same samples: τ = B/(lr·wd·D) held
    assert train.scaled_optimizer(c, 64 * 1024, 1e-3, None)["betas"][1] == pytest.approx(0.9**2)  # floor: β₁²
    steps = config.validate({**c, "budget": {"unit": "steps", "value": 100}})
    assert train.scaled_optimizer(steps, 256, 1e-3, None)["weight_decay"] == pytest.approx(0.1)  # 4x B, 4x the data
    off = train.scaled_optimizer(config.validate({"optimizer": base}), 256, 2e-3, None)
    assert off == {**{k: v for k, v in config.defaults()["optimizer"].items() if k != "scale_with_batch"}, **base}


def test_configs_without_co_scaling_keep_their_hash_and_bad_rules_are_one_line_errors():
    # the hash before scale_with_batch existed (Snakemake reruns nothing, checkpoints resume)
    assert config.config_hash(config.defaults()) == "1f886fb4713f9f5c"
    assert "scale_with_batch" not in config.train_config(config.defaults())["optimizer"]
    on = config.validate({"optimizer": {"scale_with_batch": {"reference_batch_size": 32, "beta2": True}}})
    assert config.train_config(on)["optimizer"]["scale_with_batch"]["reference_batch_size"] == 32
    assert config.config_hash(on) != "1f886fb4713f9f5c"
    with pytest.raises(UserError, match="optimizer.scale_with_batch.reference_lr': the weight_decay rule needs"):
        config.validate({"optimizer": {"scale_with_batch": {"reference_batch_size": 32, "weight_decay": True}}})
    with pytest.raises(UserError, match="beta2 and eps rules are adam/adamw's"):
        config.validate({"optimizer": {"name": "sgd", "scale_with_batch": {"reference_batch_size": 32, "eps": True}}})


def test_throughput_counts_only_this_process():
    assert train.throughput(100, 2.0, 8, None) == {"steps_per_s": 50.0, "samples_per_s": 400.0, "tokens_per_s": None}
    assert train.throughput(100, 2.0, 8, 16)["tokens_per_s"] == 6400.0
    assert train.throughput(0, 2.0, 8, 16) == {"steps_per_s": None, "samples_per_s": None, "tokens_per_s": None}


# ---------------------------------------------------------------- checkpoint files
def test_checkpoint_roundtrip_identity_check_and_clean(tmp_path):
    ident = {"config_hash": "abc", "batch_size": 8, "lr": 0.01, "seed": 0}
    ck = tmp_path / "ck"
    assert checkpoint.load(ck, ident, torch.device("cpu")) is None  # nothing saved yet
    checkpoint.save(ck, {"identity": ident, "step": 7, "x": torch.arange(3)})
    state = checkpoint.load(ck, ident, torch.device("cpu"))
    assert state["step"] == 7 and state["x"].tolist() == [0, 1, 2]
    said = []
    assert checkpoint.load(ck, {**ident, "lr": 0.02}, torch.device("cpu"), log=said.append) is None
    assert "belongs to another config/run" in said[0]
    (ck / ".checkpoint.123.tmp").write_bytes(b"half")  # what a kill -9 mid-save leaves
    checkpoint.marker(ck, "x").touch()
    checkpoint.clean(ck)
    assert not ck.exists()
    checkpoint.save(ck, {"identity": ident})
    (ck / "notes.txt").write_text("not ours")
    checkpoint.clean(ck)
    assert sorted(p.name for p in ck.iterdir()) == ["notes.txt"]  # only our files go


def test_rng_state_roundtrip():
    gen = torch.Generator().manual_seed(5)
    saved = checkpoint.rng_state(gen, torch.device("cpu"))
    first = (torch.rand(3, generator=gen), torch.rand(3))
    checkpoint.restore_rng(saved, gen, torch.device("cpu"))
    assert torch.equal(torch.rand(3, generator=gen), first[0]) and torch.equal(torch.rand(3), first[1])


# ---------------------------------------------------------------- fault hooks
def test_crash_hooks(tmp_path, monkeypatch):
    faults.before_training("B8_LR0.010000", tmp_path / "ck")  # no variable set: nothing happens
    monkeypatch.setenv("LRSCALE_FAULT_CRASH", "B16_LR0.010000,B8_LR0.010000")
    with pytest.raises(faults.InjectedCrash, match="B8_LR0.010000"):
        faults.before_training("B8_LR0.010000", tmp_path / "ck")
    faults.before_training("B8_LR0.001000", tmp_path / "ck")  # a run not named
    monkeypatch.delenv("LRSCALE_FAULT_CRASH")
    monkeypatch.setenv("LRSCALE_FAULT_CRASH_ONCE", "B8_LR0.010000")
    with pytest.raises(faults.InjectedCrash, match="CRASH_ONCE"):
        faults.before_training("B8_LR0.010000", tmp_path / "ck")
    faults.before_training("B8_LR0.010000", tmp_path / "ck")  # the retry goes through
    checkpoint.clean(tmp_path / "ck")  # ... and success removes the marker with the checkpoint
    assert not (tmp_path / "ck").exists()


def test_nan_hook_wraps_training_loss_only(monkeypatch):
    task = train.tasks.teacher_student(cfg(), 0, torch.device("cpu"))
    assert faults.wrap_task(task, 0) is task  # unset: the task itself, no wrapper in the hot loop
    monkeypatch.setenv("LRSCALE_FAULT_NAN_STEP", "3")
    wrapped = faults.wrap_task(task, 1)  # resumed after 1 update: the 2nd call here is update 3
    x, y = task.sample_batch(torch.Generator().manual_seed(0), 4)
    with torch.no_grad():
        assert math.isfinite(wrapped.loss(task.model, x, y).item())  # evaluation does not count
    first, second = wrapped.loss(task.model, x, y), wrapped.loss(task.model, x, y)
    assert math.isfinite(first.item()) and math.isnan(second.item())
    assert math.isfinite(wrapped.loss(task.model, x, y).item())


# ---------------------------------------------------------------- every exit restores SIGTERM
def test_sigterm_handler_restored_when_training_raises(tmp_path, monkeypatch):
    (tmp_path / "boom.py").write_text(
        "from dataclasses import replace\n"
        "from lrscale.tasks import teacher_student\n"
        "def build(cfg, seed, device):\n"
        "    task = teacher_student(cfg, seed, device)\n"
        "    def loss(model, x, y):\n"
        "        raise RuntimeError('task bug')\n"
        "    return replace(task, loss=loss)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RuntimeError, match="task bug"):
        train.train(cfg(task={"name": "boom:build"}), 8, 0.01, 0, tmp_path / "m.json", device="cpu")
    assert signal.getsignal(signal.SIGTERM) is before
    assert not (tmp_path / "m.json").exists()
