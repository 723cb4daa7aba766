"""Checkpoints of one training job: save, load (only its own), clean up when the job is done.

A job's checkpoint directory holds its resumable state and nothing a user needs once the job has
written metrics.json: `checkpoint.pt` (replaced atomically), half-written `.checkpoint.*.tmp`
files a kill -9 can leave, and `.marker.*` files (per-job flags that must survive a crash, e.g. the
crash-once fault hook). `clean` removes all three and the directory if it is then empty.
"""

import os
from pathlib import Path

import torch

CHECKPOINT = "checkpoint.pt"


def default_dir(out) -> Path:
    """Where a job checkpoints when no --checkpoint-dir is given: next to its metrics.json."""
    return Path(out).parent / ".checkpoint"


def marker(ckpt_dir, name: str) -> Path:
    """A per-job flag file that lives until the job succeeds."""
    return Path(ckpt_dir) / f".marker.{name}"


def rng_state(data_gen: torch.Generator, device: torch.device) -> dict:
    """Every random stream a resumed run must continue: data, CPU (dropout), CUDA."""
    return {
        "data_gen": data_gen.get_state(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None,
    }


def restore_rng(state: dict, data_gen: torch.Generator, device: torch.device) -> None:
    data_gen.set_state(state["data_gen"])
    torch.set_rng_state(state["rng_cpu"])
    if device.type == "cuda" and state.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(state["rng_cuda"])


def save(ckpt_dir, state: dict) -> Path:
    """Write `state` atomically: a kill -9 mid-save leaves the previous checkpoint intact."""
    return save_file(Path(ckpt_dir) / CHECKPOINT, state)


def save_file(path, state: dict) -> Path:
    """`state` to `path`, atomically (a temp file beside it, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".checkpoint.{os.getpid()}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load(ckpt_dir, identity: dict, device: torch.device, log=print) -> dict | None:
    """The saved state if it belongs to this job (same config hash, B, lr, seed), else None."""
    path = Path(ckpt_dir) / CHECKPOINT
    if not path.is_file():
        return None
    state = torch.load(path, map_location=device, weights_only=False)
    if state.get("identity") != identity:
        log(f"ignoring checkpoint {path}: it belongs to another config/run")
        return None
    return state


def clean(ckpt_dir) -> None:
    """The job is done: its checkpoint, half-written temp files and markers go, then the dir."""
    ckpt_dir = Path(ckpt_dir)
    for leftover in [ckpt_dir / CHECKPOINT, *ckpt_dir.glob(".checkpoint.*.tmp"), *ckpt_dir.glob(".marker.*")]:
        leftover.unlink(missing_ok=True)
    try:
        ckpt_dir.rmdir()
    except OSError:
        pass  # missing, or holds files that are not ours
