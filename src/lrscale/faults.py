"""Fault injection for the reliability tests, and the benchmark's baseline. Never set these
variables in normal use.

  LRSCALE_FAULT_CRASH=B8_LR0.010000,...       those runs crash before training starts
  LRSCALE_FAULT_CRASH_ONCE=B8_LR0.010000,...  only their first attempt crashes (a retry succeeds)
  LRSCALE_FAULT_CRASH_ONCE_LAST=N             the first run (of the train rule's layout) to start
                                              when N runs of its sweep have finished crashes, once
                                              per sweep: a packed job's last member, in whatever
                                              order the pack runs
  LRSCALE_FAULT_NAN_STEP=N                    the training loss of update N (1-based) is NaN
  LRSCALE_BENCH_SYNC_EVERY_STEP=1             read every training loss back to the host, as the
                                              seed study's loop did (`loss.item()` per step):
                                              bench/sweep_gpu.py's seed-style baseline

The crash hooks run from the CLI before training; the NaN and sync hooks wrap the task's loss.
The training loop itself has no test branch.
"""

import os
from dataclasses import replace
from pathlib import Path

import torch

from . import checkpoint


class InjectedCrash(RuntimeError):
    """A crash the tests asked for: a real, non-zero exit with a traceback, like a bug would give."""


def _named(variable: str) -> set[str]:
    return {n for n in os.environ.get(variable, "").split(",") if n}


def before_training(name: str, ckpt_dir) -> None:
    """Crash this run now if a crash hook names it."""
    if name in _named("LRSCALE_FAULT_CRASH"):
        raise InjectedCrash(f"LRSCALE_FAULT_CRASH: injected crash of {name}")
    once = checkpoint.marker(ckpt_dir, "crashed_once")  # removed with the checkpoint on success
    if name in _named("LRSCALE_FAULT_CRASH_ONCE") and not once.exists():
        once.parent.mkdir(parents=True, exist_ok=True)
        once.touch()
        raise InjectedCrash(f"LRSCALE_FAULT_CRASH_ONCE: injected crash of {name}")
    if last := os.environ.get("LRSCALE_FAULT_CRASH_ONCE_LAST"):
        _crash_once_after(name, Path(ckpt_dir), int(last))


def _crash_once_after(name: str, ckpt_dir: Path, finished: int) -> None:
    sweep = ckpt_dir.parents[2]  # <sweep>/checkpoints/<run>/seed<k>
    once = checkpoint.marker(sweep / "checkpoints", "crashed_once_last")
    if not once.exists() and len(list(sweep.glob("runs/*/seed*/metrics.json"))) >= finished:
        once.touch()
        raise InjectedCrash(f"LRSCALE_FAULT_CRASH_ONCE_LAST: injected crash of {name}")


def nan_step() -> int:
    return int(os.environ.get("LRSCALE_FAULT_NAN_STEP", "0") or 0)


def wrap_task(task, first_step: int):
    """The task itself, or (LRSCALE_FAULT_NAN_STEP set) one whose training loss turns NaN at that
    update. Counts training calls only (evaluation runs under no_grad), starting after
    `first_step` updates, so a resumed run counts from where it left off."""
    if os.environ.get("LRSCALE_BENCH_SYNC_EVERY_STEP"):
        task = _sync_every_step(task)
    target = nan_step()
    if not target:
        return task
    done = [first_step]
    inner = task.loss

    def loss(model, x, y):
        value = inner(model, x, y)
        if torch.is_grad_enabled():
            done[0] += 1
            if done[0] == target:
                value = value * float("nan")
        return value

    return replace(task, loss=loss)


def _sync_every_step(task):
    inner = task.loss

    def loss(model, x, y):
        value = inner(model, x, y)
        if torch.is_grad_enabled():
            value.item()  # the host waits for the GPU here, every step
        return value

    return replace(task, loss=loss)
