"""Checkpoints of one training job: save, load (only its own), clean up when the job is done.

A job's checkpoint directory holds its resumable state and nothing a user needs once the job has
written metrics.json: `checkpoint.pt` (replaced atomically), half-written `.checkpoint.*.tmp`
files a kill -9 can leave, and `.marker.*` files (per-job flags that must survive a crash, e.g. the
crash-once fault hook). `clean` removes all three and the directory if it is then empty.

One more file outlives a finished job, in remote (SLURM) jobs only: `finished.json`, its metrics kept
for the Snakemake invocation that ran it (config.INVOCATION_ENV). When one member of a packed SLURM job
fails, Snakemake reruns every member; the finished ones then restore their metrics from it instead
of training again, so the failed member is the only one retrained. A later invocation (a rerun,
`--forcerun`) has another id and trains afresh; the file stays until that job runs again (small, safe
to delete).
"""

import json
import os
from pathlib import Path

import torch

from .config import INVOCATION_ENV, REMOTE_ENV
from .errors import UserError
from .fileio import atomic_write_json

CHECKPOINT = "checkpoint.pt"
KEPT = "finished.json"


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


def invocation_id() -> str | None:
    """The id of the Snakemake invocation whose remote job (a SLURM job) this process runs in, else
    None: a local job is never rerun once finished, so it keeps nothing."""
    return os.environ.get(INVOCATION_ENV) if os.environ.get(REMOTE_ENV) == "1" else None


def keep_finished(ckpt_dir, identity: dict, metrics: dict, log=print) -> None:
    """In a remote job of a Snakemake invocation: keep the finished job's metrics for that invocation.
    Its metrics.json is already written: a failure here costs a retrain at most, never the job."""
    if (invocation := invocation_id()) is None:
        return
    try:
        atomic_write_json(Path(ckpt_dir) / KEPT, {"invocation": invocation, "identity": identity, "metrics": metrics})
    except UserError as e:
        log(f"warning: finished result not kept for a rerun of its packed job ({e})")


def kept_finished(ckpt_dir, identity: dict) -> dict | None:
    """The metrics this job wrote earlier in this same invocation (its pack is being rerun), else None."""
    if (invocation := invocation_id()) is None:
        return None
    try:
        kept = json.loads((Path(ckpt_dir) / KEPT).read_text())
    except (OSError, ValueError):
        return None  # none kept, or half-written by a kill: train
    if kept.get("invocation") != invocation or kept.get("identity") != identity:
        return None
    return kept.get("metrics")


def clean(ckpt_dir) -> None:
    """The job is done: its checkpoint, half-written temp files and markers go, then the dir (a
    metrics copy an earlier invocation kept goes too: it is not this one's)."""
    ckpt_dir = Path(ckpt_dir)
    for leftover in [ckpt_dir / CHECKPOINT, ckpt_dir / KEPT, *ckpt_dir.glob(".checkpoint.*.tmp"),
                     *ckpt_dir.glob(".marker.*"), *ckpt_dir.glob(f".{KEPT}.*")]:
        leftover.unlink(missing_ok=True)
    try:
        ckpt_dir.rmdir()
    except OSError:
        pass  # missing, or holds files that are not ours
