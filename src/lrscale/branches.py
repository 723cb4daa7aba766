"""Several WSD horizons from one stable phase (issue 24.2; Hägele et al. 2024).

A sweep with schedule `wsd` and several horizons (budget.values) trains each (B, lr, seed) once
through its warmup and stable phase (`train_stable`, `lrscale stable`), saving a snapshot where each
horizon's cool-down starts; each horizon's job resumes from its snapshot and runs only its cool-down
(`lrscale train --horizon H --branch-from SNAPSHOT`). A branched run is bit-identical to a standalone
WSD run of its horizon, because
  - the lr before a cool-down does not depend on the horizon (config: the warmup is in steps);
  - evaluating and probing never touch the trajectory, and the stable phase evaluates and probes
    at every horizon's points (each snapshot keeps its horizon's, with its train-loss means
    recomputed over its own eval intervals from the per-update losses);
  - a divergence is dated at its first bad update wherever the evals fall; a stable phase that
    diverges before a horizon's cool-down hands that horizon a marker that says so, and that
    horizon's run trains alone from step 0 (to its own divergence: short, and its probes its own).
Only the training job imports this (torch).
"""

import os
import pickle
import time
from pathlib import Path

import torch

from . import checkpoint
from .config import HORIZON, SNAPSHOT, at_horizon, config_hash, horizons, run_name
from .errors import UserError
from .train import (Progress, Timer, check_args, cooldown_start, eval_steps, log, lr_multiplier, new_loop, num_steps,
                    probe_steps, process_age_s, reference_loss, restore, resume, run_updates, setup, state_of)

def stable_identity(cfg, batch_size, lr, seed) -> dict:
    """Whose snapshots these are: the sweep's training config (every horizon), B, lr, seed."""
    return {"config_hash": config_hash(cfg), "batch_size": batch_size, "lr": lr, "seed": seed, "phase": "stable"}


def horizon_plan(cfg, batch_size, tokens_per_sample) -> dict:
    """horizon -> (its run's updates, its cool-down's first update, its eval steps, its probe steps)."""
    tc, plan = cfg["train"], {}
    for h in horizons(cfg):
        steps = num_steps(at_horizon(cfg, h), batch_size, tokens_per_sample)
        lr_multiplier(cfg["schedule"], steps)  # a warmup that overlaps this horizon's cool-down: its error, now
        evals = eval_steps(steps, tc["eval_points"])
        plan[h] = (steps, cooldown_start(cfg["schedule"], steps), evals, probe_steps(evals, tc["noise_probes"]))
    return plan


def _snapshot(job, loop, done: int, wall_s: float, horizon: int) -> dict:
    """The state where `horizon`'s cool-down starts: a checkpoint's body, naming its horizon."""
    return {**state_of(job, loop, done, wall_s), "horizon": horizon, "diverged_at": None}


def _stable_job(cfg, plan_of, batch_size, lr, seed, device, ckpt_dir, threads):
    """The stable phase's job: the longest horizon's run, evaluating and probing at every horizon's
    points up to its cool-down, with its own identity; and its horizons' plan."""
    job = setup(at_horizon(cfg, max(horizons(cfg))), batch_size, lr, seed, device, ckpt_dir, threads)
    plan = plan_of(cfg, batch_size, job.task.tokens_per_sample)
    job.identity = stable_identity(cfg, batch_size, lr, seed)
    job.evals = sorted({e for _, cool, evals, _ in plan.values() for e in evals if e <= cool})
    job.probes = sorted({p for _, cool, _, probes in plan.values() for p in probes if p <= cool})
    return job, plan


def train_stable(cfg, batch_size, lr, seed, out_dir, device="auto", checkpoint_dir=None, checkpoint_every_s=300.0,
                 threads=None) -> list[Path]:
    """The warmup and stable phase of every horizon at once, to the longest one's cool-down: a
    snapshot `D{h}.pt` in `out_dir` where each horizon's cool-down starts (a marker that the phase
    diverged, for a horizon it never reached: that horizon's run then trains from step 0)."""
    t_start, startup_s, out_dir = time.monotonic(), process_age_s(), Path(out_dir)
    check_args(batch_size, lr, out_dir / "progress.json")  # bad flags and an unwritable dir fail now, not at the end
    ckpt_dir = Path(checkpoint_dir or out_dir / ".checkpoint")
    job, plan = _stable_job(cfg, horizon_plan, batch_size, lr, seed, device, ckpt_dir, threads)
    # snapshots are kept beside the resume checkpoint until the phase ends (Snakemake deletes a failed
    # job's outputs: a killed phase resumes with the snapshots it passed), then moved to out_dir
    kept = {h: ckpt_dir / SNAPSHOT.format(horizon=h) for h in plan}
    paths = {h: out_dir / SNAPSHOT.format(horizon=h) for h in plan}
    loop = new_loop(job)
    resume(job, loop)
    if loop.start and any(cool <= loop.start and not kept[h].is_file() for h, (_, cool, _, _) in plan.items()):
        log("restarting the stable phase from step 0: a snapshot it passed is gone")
        (ckpt_dir / checkpoint.CHECKPOINT).unlink(missing_ok=True)
        job, plan = _stable_job(cfg, horizon_plan, batch_size, lr, seed, device, ckpt_dir, threads)  # fresh weights
        loop = new_loop(job)
    if loop.start == 0:
        loop.reference_loss = reference_loss(job)
    timer, stop = Timer(job.device, startup_s), max(cool for _, cool, _, _ in plan.values())
    name = f"{run_name(batch_size, lr)} stable phase"
    progress = Progress(out_dir / "progress.json", name, max(stop, 1), loop.start, job.evals)

    def at_step(done: int) -> None:
        for h, (_, cool, _, _) in plan.items():
            if cool == done:
                wall_s = loop.prior_wall_s + time.monotonic() - t_start
                checkpoint.save_file(kept[h], _snapshot(job, loop, done, wall_s, h))

    if loop.start == 0:
        at_step(0)
    log(f"{name} seed {seed}: {stop} of {job.steps} steps on {job.device}, snapshots at "
        + ", ".join(f"{HORIZON.format(horizon=h)} step {cool}" for h, (_, cool, _, _) in plan.items()))
    run_updates(job, loop, cfg, progress, timer, t_start, checkpoint_every_s, stop=stop, at_step=at_step)
    for h, path in kept.items():
        if not path.is_file():  # diverged before this horizon's cool-down
            if loop.diverged_at is None:
                raise RuntimeError(f"stable phase ended at step {stop} without the snapshot of {HORIZON.format(horizon=h)}")
            checkpoint.save_file(path, {"identity": job.identity, "horizon": h, "diverged_at": loop.diverged_at})
    out_dir.mkdir(parents=True, exist_ok=True)
    for h, path in kept.items():
        os.replace(path, paths[h])  # the same file system (results/<sweep>/): an atomic move
    checkpoint.clean(ckpt_dir)
    progress.write("diverged" if loop.diverged_at is not None else "done", stop, loop.curves["val_loss"])
    log(f"wrote {len(paths)} snapshots to {out_dir}" + (f" (diverged at step {loop.diverged_at})"
                                                       if loop.diverged_at is not None else ""))
    return list(paths.values())


def _read_snapshot(path: Path, device) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: no such stable-phase snapshot; expected `lrscale stable`'s output")
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise UserError(f"{path}: not a readable stable-phase snapshot ({type(e).__name__}); delete it to rerun "
                        "its stable phase") from None
    if not isinstance(state, dict) or "identity" not in state:
        raise UserError(f"{path}: not a stable-phase snapshot; delete it to rerun its stable phase")
    return state


def start_from(job, loop, path, identity: dict, horizon: int) -> None:
    """Branch this horizon's run from its stable-phase snapshot: the state at its cool-down's start,
    with the curves and probes its own eval and probe steps would have recorded. A stable phase that
    diverged before this cool-down leaves the run at step 0: it trains alone (to its own divergence)."""
    path = Path(path)
    state = _read_snapshot(path, job.device)
    if state.get("identity") != identity:
        raise UserError(f"{path}: a snapshot of another stable phase (config, batch size, lr or seed differ); "
                        "expected this run's; delete it to rerun its stable phase")
    if state.get("horizon") != horizon:
        raise UserError(f"{path}: the snapshot of horizon {state.get('horizon')}; expected {horizon}'s")
    if state["diverged_at"] is not None:
        log(f"its stable phase diverged at step {state['diverged_at']}, before this cool-down: training from step 0")
        return
    restore(job, loop, state)  # then only this horizon's own eval points and probes
    loop.curves = _rebased(state["curves"], set(job.evals), state["step_loss"].cpu())
    loop.noise = [p for p in state["noise"] if p["step"] in set(job.probes)]
    log(f"branched from {path} at step {loop.start}")


def _rebased(curves: dict, evals: set, step_loss: torch.Tensor) -> dict:
    """The stable phase's curves at this horizon's eval steps only, each train-loss point the mean
    over this horizon's eval interval (as its own loop computes it)."""
    keep = [i for i, s in enumerate(curves["step"]) if s in evals]
    out = {k: [v[i] for i in keep] for k, v in curves.items()}
    previous = 0
    for j, s in enumerate(out["step"]):
        out["train_loss"][j] = step_loss[previous:s].double().mean().item()
        previous = s
    return out
