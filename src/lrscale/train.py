"""One training job: (config, batch size, lr, seed) -> metrics.json.

Reads top to bottom: setup, resume, one loop with commented phases, summary, atomic write.
Per-step losses and grad norms stay on the device in preallocated buffers and are read back only
at eval points (one host sync per eval, divergence checks included), so a GPU never waits on
`loss.item()`. The training trajectory never depends on when we evaluate.
"""

import math
import os
import platform
import resource
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from . import __version__, tasks
from .config import config_hash, run_name, train_config
from .errors import UserError
from .fileio import atomic_write_json, check_writable_dir


class Preempted(Exception):
    """SIGTERM received: a checkpoint was written; the job exits non-zero (SLURM requeue/retry)."""

    exit_code = 143


def log(msg: str) -> None:
    print(f"[lrscale train] {msg}", file=sys.stderr, flush=True)


def num_steps(cfg, batch_size, tokens_per_sample) -> int:
    unit, value = cfg["budget"]["unit"], cfg["budget"]["value"]
    if unit == "steps":
        return value
    if unit == "tokens":
        if not tokens_per_sample:
            raise UserError(f"budget.unit: 'tokens' needs a sequence task, not {cfg['task']['name']}")
        return math.ceil(value / (batch_size * tokens_per_sample))
    return math.ceil(value / batch_size)  # samples: every B sees the same data volume


def eval_steps(steps: int, points: int) -> list[int]:
    """`points` eval steps spread evenly over 1..steps (the last step always included)."""
    return sorted({max(1, round(steps * k / points)) for k in range(1, points + 1)})


def lr_multiplier(sched: dict, steps: int):
    """Multiplier of the peak lr for optimizer update s (0-based)."""
    if sched["name"] == "constant":
        return lambda s: 1.0
    warm = sched["warmup_steps"] if sched["warmup_steps"] is not None else round(sched["warmup_fraction"] * steps)
    floor = sched["min_lr_ratio"]

    def mult(s):
        if s < warm:
            return (s + 1) / warm
        p = min(1.0, (s - warm) / max(1, steps - warm))
        if sched["name"] == "cosine":
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))
        return 1 - (1 - floor) * p  # linear

    return mult


def make_optimizer(params, opt: dict, lr: float, device: torch.device):
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    if opt["name"] in ("adam", "adamw"):
        cls = torch.optim.AdamW if opt["name"] == "adamw" else torch.optim.Adam
        return cls(params, lr=lr, betas=tuple(opt["betas"]), eps=opt["eps"], weight_decay=opt["weight_decay"], **fast)
    if opt["name"] == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=opt["momentum"], nesterov=opt["nesterov"], weight_decay=opt["weight_decay"], **fast
        )
    raise UserError(f"optimizer.name: unknown optimizer '{opt['name']}'; expected adamw, adam or sgd")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device: cuda requested but no CUDA device is available; expected auto or cpu")
    if name not in ("cpu", "cuda"):
        raise UserError(f"--device: unknown device '{name}'; expected auto, cpu or cuda")
    return torch.device(name)


def stream_seed(seed: int, batch_size: int) -> int:
    """The data stream depends only on (seed, batch size): all lrs at one B see identical batches."""
    return (seed * 1_000_003 + batch_size * 7919) % (2**63)


def _stats(values: torch.Tensor) -> dict:
    if values.numel() == 0:
        return {"median": None, "p95": None, "max": None}
    v = values.double()
    return {"median": v.median().item(), "p95": torch.quantile(v, 0.95).item(), "max": v.max().item()}


def train(cfg, batch_size, lr, seed, out, device="auto", checkpoint_dir=None, checkpoint_every_s=300.0, threads=None,
          gpu_slot=None):
    t_start = time.monotonic()
    # ---------------------------------------------------------------- setup
    if batch_size <= 0:
        raise UserError(f"--batch-size: {batch_size} is not a positive integer")
    if not (lr > 0 and math.isfinite(lr)):
        raise UserError(f"--lr: {lr} is not a positive finite number")
    out = Path(out)
    check_writable_dir(out)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir else out.parent / ".checkpoint"
    ckpt_path = ckpt_dir / "checkpoint.pt"
    dev = pick_device(device)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)  # global RNG: dropout; init uses explicit seeded generators
    build = tasks.resolve(cfg["task"]["name"])
    task = build(cfg, seed, dev)
    model = task.model.to(dev)
    steps = num_steps(cfg, batch_size, task.tokens_per_sample)
    evals = eval_steps(steps, cfg["train"]["eval_points"])
    optimizer = make_optimizer(model.parameters(), cfg["optimizer"], lr, dev)
    lr_mult = lr_multiplier(cfg["schedule"], steps)
    data_gen = torch.Generator().manual_seed(stream_seed(seed, batch_size))
    tc = cfg["train"]
    precision = tc["precision"] if tc["precision"] != "auto" else ("bf16" if dev.type == "cuda" else "fp32")
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    forward = model
    if tc["compile"] != "off":
        forward = torch.compile(model, mode="reduce-overhead" if tc["compile"] == "cudagraphs" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    clip = tc["grad_clip"]
    identity = {"config_hash": config_hash(cfg), "batch_size": batch_size, "lr": lr, "seed": seed}

    # Device-side buffers, read back only at eval points.
    step_loss = torch.zeros(steps, device=dev)
    grad_norm = torch.zeros(steps, device=dev)
    curves = {"step": [], "samples_seen": [], "train_loss": [], "val_loss": [], "learning_rate": []}
    start, prior_wall_s, init_loss = 0, 0.0, None
    diverged_at = None

    # ---------------------------------------------------------------- resume
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=dev, weights_only=False)
        if state["identity"] == identity:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            data_gen.set_state(state["data_gen"])
            torch.set_rng_state(state["rng_cpu"])
            if dev.type == "cuda" and state.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(state["rng_cuda"])
            start, curves, prior_wall_s, init_loss = state["step"], state["curves"], state["wall_s"], state["init_loss"]
            step_loss[:start] = state["step_loss"].to(dev)
            grad_norm[:start] = state["grad_norm"].to(dev)
            log(f"resumed from step {start}")
        else:
            log(f"ignoring checkpoint {ckpt_path}: it belongs to another config/run")

    def save_checkpoint(step):
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        tmp = ckpt_dir / f".checkpoint.{os.getpid()}.tmp"
        torch.save(
            {
                "identity": identity, "step": step, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "data_gen": data_gen.get_state(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state() if dev.type == "cuda" else None,
                "step_loss": step_loss[:step].cpu(), "grad_norm": grad_norm[:step].cpu(),
                "curves": curves, "init_loss": init_loss,
                "wall_s": prior_wall_s + time.monotonic() - t_start,
            },
            tmp,
        )
        os.replace(tmp, ckpt_path)

    # SIGTERM (SLURM preemption / time limit): checkpoint at the next step boundary, then exit.
    terminate = {"flag": False}
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: terminate.update(flag=True))

    # Fault injection for the reliability tests (never set in normal use):
    # LRSCALE_FAULT_CRASH=B8_LR0.010000,... crashes those runs; LRSCALE_FAULT_NAN_STEP=N makes loss N NaN.
    name = run_name(batch_size, lr)
    if name in os.environ.get("LRSCALE_FAULT_CRASH", "").split(","):
        raise RuntimeError(f"LRSCALE_FAULT_CRASH: injected crash of {name}")
    once = ckpt_dir / ".crashed_once"  # LRSCALE_FAULT_CRASH_ONCE: crash the first attempt only
    if name in os.environ.get("LRSCALE_FAULT_CRASH_ONCE", "").split(",") and not once.exists():
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        once.touch()
        raise RuntimeError(f"LRSCALE_FAULT_CRASH_ONCE: injected crash of {name}")
    nan_step = int(os.environ.get("LRSCALE_FAULT_NAN_STEP", "0") or 0)

    # ---------------------------------------------------------------- loop
    log(f"{name} seed {seed}: {steps} steps on {dev} ({precision}), {len(evals)} eval points")
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(total=steps, initial=start, desc=name, unit="step")
    next_log_pct = 10
    last_ckpt = time.monotonic()
    loop_t0 = time.monotonic()
    eval_set = set(evals)
    prev_eval = max([0] + [s for s in evals if s <= start])
    model.train()
    try:
        for step in range(start, steps):  # `step` = updates done so far; this is update step+1
            # 1. lr for this update (host-side arithmetic, no sync)
            lr_now = lr * lr_mult(step)
            for g in optimizer.param_groups:
                g["lr"] = lr_now
            # 2. forward/backward on the next batch of this (seed, B) stream
            x, y = task.sample_batch(data_gen, batch_size)
            with autocast:
                loss = task.loss(forward, x, y)
            if nan_step == step + 1:
                loss = loss * float("nan")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # 3. grad norm before clipping (clipping silently caps the effective lr: record it)
            if clip is not None:
                norm = torch.nn.utils.clip_grad_norm_(params, clip)
            else:
                norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            optimizer.step()
            step_loss[step] = loss.detach().float()
            grad_norm[step] = norm.detach().float()
            done = step + 1
            # 4. eval point: one host sync; divergence check over the losses since the last one
            if done in eval_set:
                chunk = step_loss[prev_eval:done].cpu()
                if init_loss is None:
                    init_loss = chunk[0].item()
                limit = tc["divergence_factor"] * init_loss if math.isfinite(init_loss) else -math.inf
                bad = (~torch.isfinite(chunk)) | (chunk > limit)
                if bad.any():
                    diverged_at = prev_eval + int(bad.nonzero()[0]) + 1
                    log(f"diverged at step {diverged_at} (loss {chunk[bad][0].item():.4g}, limit {limit:.4g})")
                    break
                model.eval()
                with torch.no_grad(), autocast:
                    total = sum(task.loss(model, xv, yv).float() * len(xv) for xv, yv in task.val_batches)
                    val = (total / sum(len(xv) for xv, _ in task.val_batches)).item()
                model.train()
                curves["step"].append(done)
                curves["samples_seen"].append(done * batch_size)
                curves["train_loss"].append(chunk.double().mean().item())
                curves["val_loss"].append(val)
                curves["learning_rate"].append(lr_now)
                prev_eval = done
            # 5. progress, checkpoint, preemption
            if progress is not None:
                progress.update(1)
                if curves["val_loss"]:
                    progress.set_postfix(val_loss=f"{curves['val_loss'][-1]:.4f}", refresh=False)
            elif 100 * done / steps >= next_log_pct:
                last_val = f", val_loss {curves['val_loss'][-1]:.4f}" if curves["val_loss"] else ""
                log(f"{name}: {next_log_pct}% (step {done}/{steps}{last_val})")
                next_log_pct += 10
            if terminate["flag"]:
                save_checkpoint(done)
                log(f"SIGTERM: checkpoint written at step {done} to {ckpt_path}")
                raise Preempted(f"preempted at step {done}; rerun to resume")
            if time.monotonic() - last_ckpt > checkpoint_every_s:
                save_checkpoint(done)
                last_ckpt = time.monotonic()
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if progress is not None:
            progress.close()
    loop_s = time.monotonic() - loop_t0

    # ---------------------------------------------------------------- summary
    n_done = diverged_at if diverged_at is not None else steps
    diverged = diverged_at is not None
    losses = step_loss[:n_done].double().cpu()
    norms = grad_norm[:n_done].double().cpu()
    window = max(1, math.ceil(tc["final_window"] * steps))
    eval_window = max(1, math.ceil(tc["final_window"] * len(evals)))
    final_train = final_val = train_std = None
    if not diverged:
        tail = losses[-window:]
        final_train = tail.mean().item()
        train_std = tail.std(unbiased=window > 1).item() if window > 1 else 0.0
        final_val = sum(curves["val_loss"][-eval_window:]) / len(curves["val_loss"][-eval_window:])
    finite_val = [v for v in curves["val_loss"] if math.isfinite(v)]
    if dev.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(dev) / 2**20
        device_name = torch.cuda.get_device_name(dev)
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        device_name = platform.processor() or platform.machine()
    ran = n_done - start
    metrics = {
        "schema_version": 1,
        "name": name,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "task": cfg["task"]["name"],
        "config": train_config(cfg),  # the sections this job depends on, defaults filled
        "config_hash": identity["config_hash"],
        "curves": curves,
        "final_train_loss": final_train,
        "final_val_loss": final_val,
        "min_val_loss": min(finite_val) if finite_val else None,
        "train_loss_std": train_std,
        "initial_loss": init_loss,
        "converged": (not diverged) and train_std is not None and train_std < tc["convergence_threshold"],
        "diverged": diverged,
        "diverged_at_step": diverged_at,
        "num_steps": n_done,
        "planned_steps": steps,
        "samples_seen": n_done * batch_size,
        "grad_norm": {
            **_stats(norms),
            "clip": clip,
            "clipped_fraction": (norms > clip).double().mean().item() if clip is not None and len(norms) else 0.0,
        },
        "precision": precision,
        "compile": tc["compile"],
        "wall_s": prior_wall_s + time.monotonic() - t_start,
        "steps_per_s": ran / loop_s if loop_s > 0 and ran > 0 else None,
        "samples_per_s": ran * batch_size / loop_s if loop_s > 0 and ran > 0 else None,
        "tokens_per_s": (ran * batch_size * task.tokens_per_sample / loop_s)
        if task.tokens_per_sample and loop_s > 0 and ran > 0 else None,
        "peak_memory_mb": peak_mb,
        "device": str(dev),
        "device_name": device_name,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpu_slot": gpu_slot,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "torch_version": torch.__version__,
        "lrscale_version": __version__,
        "resumed_from_step": start or None,
    }
    atomic_write_json(out, metrics)  # the only write of metrics.json, at the very end
    # Done: the checkpoint, a half-written one left by a kill -9, and fault markers go.
    for leftover in [ckpt_path, ckpt_dir / ".crashed_once", *ckpt_dir.glob(".checkpoint.*.tmp")]:
        leftover.unlink(missing_ok=True)
    try:
        ckpt_dir.rmdir()
    except OSError:
        pass
    log(f"wrote {out}: final_val_loss {final_val}, diverged {diverged}, {metrics['steps_per_s'] or 0:.1f} steps/s")
    return metrics
