"""One training job: (config, batch size, lr, seed) -> metrics.json.

Reads top to bottom: the pieces (schedule, optimizer, evaluation), `setup`, then `train`: resume,
one loop with numbered phases, `summarize`, one atomic write. While it runs, the job keeps its
progress in progress.json beside metrics.json (`Progress`; `lrscale status` reads it). Per-step
losses and grad norms stay on the device in preallocated buffers and are read back only at eval
points (one host sync per eval, divergence checks included), so a GPU never waits on
`loss.item()`. The training trajectory never depends on when we evaluate. Checkpoint files live
in lrscale.checkpoint, test-only fault hooks in lrscale.faults.
"""

import math
import os
import platform
import resource
import signal
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from . import __version__, checkpoint, faults, probes, tasks
from .config import at_horizon, config_hash, progress_path, run_name, train_config
from .errors import Preempted, UserError
from .fileio import atomic_write_json, check_writable_dir


def log(msg: str) -> None:
    print(f"[lrscale train] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the pieces
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


def probe_steps(evals: list[int], probes: int) -> list[int]:
    """`probes` of the eval steps, spread evenly, the last one included (a probe's numbers sit on the
    same W&B rows as that eval's losses)."""
    return sorted({evals[max(0, round(len(evals) * k / probes) - 1)] for k in range(1, probes + 1)}) if probes else []


def cooldown_start(sched: dict, steps: int) -> int:
    """wsd: the cool-down's first update (0-based), i.e. the updates before it."""
    return steps - max(1, round(sched.get("cooldown_fraction", 0.2) * steps))


def lr_multiplier(sched: dict, steps: int):
    """Multiplier of the peak lr for optimizer update s (0-based)."""
    if sched["name"] == "constant":
        return lambda s: 1.0
    warm = sched["warmup_steps"] if sched["warmup_steps"] is not None else round(sched["warmup_fraction"] * steps)
    floor = sched["min_lr_ratio"]
    cool = cooldown_start(sched, steps)
    sqrt_shape = sched.get("cooldown_shape", "1-sqrt") == "1-sqrt"
    if sched["name"] == "wsd" and warm > cool:
        raise UserError(f"schedule: {warm} warmup steps overlap the cool-down, which starts at update {cool} of "
                        f"{steps}; expected warmup + cool-down within the run")

    def mult(s):
        if s < warm:
            return (s + 1) / warm
        if sched["name"] == "wsd":
            q = min(1.0, max(0.0, (s - cool + 1) / (steps - cool)))  # the last update (steps - 1) runs at the floor
            return 1 - (1 - floor) * (math.sqrt(q) if sqrt_shape else q)
        p = min(1.0, (s - warm) / max(1, steps - warm))
        if sched["name"] == "cosine":
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))
        return 1 - (1 - floor) * p  # linear

    return mult


BETA2_FLOOR = 0.5  # below it the second moment would average over about one step: no longer a moment
# and never below β₁²: Adam with β₂ < β₁² can diverge (Reddi et al. 2018's counter-example regime)


def scaled_optimizer(cfg, batch_size: int, lr: float, tokens_per_sample: int | None) -> dict:
    """The optimizer settings this run uses: optimizer's, each co-scaling rule of
    optimizer.scale_with_batch applied from its reference batch size (β₂ with a constant half-life in
    samples, ε by the square-root rule, weight decay with a constant timescale τ = B/(lr·wd·D))."""
    opt = {k: v for k, v in cfg["optimizer"].items() if k != "scale_with_batch"}
    rules = cfg["optimizer"].get("scale_with_batch")
    if not rules:
        return opt
    b_ref = rules["reference_batch_size"]
    ratio = batch_size / b_ref
    if rules["beta2"]:
        opt["betas"] = [opt["betas"][0], max(opt["betas"][1] ** ratio, BETA2_FLOOR, opt["betas"][0] ** 2)]
    if rules["eps"]:
        opt["eps"] = opt["eps"] * ratio**-0.5
    if rules["weight_decay"]:
        samples = num_steps(cfg, batch_size, tokens_per_sample) * batch_size
        samples_ref = num_steps(cfg, b_ref, tokens_per_sample) * b_ref
        opt["weight_decay"] = opt["weight_decay"] * ratio * (rules["reference_lr"] / lr) * (samples_ref / samples)
    return opt


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


def evaluate(model, task, autocast) -> float:
    """Mean loss over the task's fixed validation set, in eval mode: one host sync."""
    model.eval()
    with torch.no_grad(), autocast:
        total = sum(task.loss(model, xv, yv).float() * len(xv) for xv, yv in task.val_batches)
        val = (total / sum(len(xv) for xv, _ in task.val_batches)).item()
    model.train()
    return val


DIVERGENCE_WINDOW = 16  # updates in the running median that judges divergence (config/README "Divergence")
REFERENCE_SALT = 0x5EED_0F_DE7  # keeps the reference batches apart from the training and probe streams


def first_bad_step(losses: torch.Tensor, new_from: int, limit: float, window: int) -> int | None:
    """Offset into `losses` of the first update at or after `new_from` that shows divergence: a
    non-finite loss (at once), or the median of the `window` losses ending there above `limit`.
    One heavy-tailed mini-batch cannot move a median; an unstable optimizer moves all of them.
    `losses` starts `window` - 1 updates before `new_from` where the run has them (a window is
    judged only once it is full)."""
    values = losses.double()
    bad = ~torch.isfinite(values)
    if len(values) >= window:
        medians = values.nan_to_num(nan=math.inf).unfold(0, window, 1).median(dim=1).values
        bad[window - 1 :] |= medians > limit  # medians[j] covers losses[j : j + window]
    bad[:new_from] = False
    return int(bad.nonzero()[0]) if bad.any() else None


def reference_loss(job) -> float:
    """The loss at initialisation: the median over DIVERGENCE_WINDOW mini-batches of the run's size,
    drawn from a stream of their own under a forked RNG, so the training trajectory never sees them
    (the first step's loss alone is one mini-batch, as heavy-tailed as any)."""
    gen = torch.Generator().manual_seed(job.stream_seed ^ REFERENCE_SALT)
    with probes.forked_rng(job.device), torch.no_grad(), job.autocast:
        losses = [job.task.loss(job.model, *job.task.sample_batch(gen, job.batch_size)).float()
                  for _ in range(DIVERGENCE_WINDOW)]
    return torch.stack(losses).median().item()


# ---------------------------------------------------------------- setup
CURVES = ("step", "samples_seen", "train_loss", "val_loss", "learning_rate")  # one entry per eval point
TIMED = ("setup_s", "first_step_s", "eval_s", "probe_s", "checkpoint_s", "summary_s")  # metrics.json timing, with train_s


@dataclass
class Job:
    """Everything one run is built from; `setup` makes it, the loop only reads it."""

    batch_size: int
    lr: float
    device: torch.device
    task: tasks.Task
    model: torch.nn.Module
    forward: Callable  # the model, or its torch.compile'd wrapper (training steps only)
    optimizer: torch.optim.Optimizer
    lr_mult: Callable[[int], float]
    data_gen: torch.Generator
    stream_seed: int  # the data stream's seed: a function of (seed, batch size)
    steps: int
    evals: list[int]
    probes: list[int]  # steps after which the gradient noise is probed
    probe_batches: int
    precision: str
    autocast: Any
    identity: dict
    ckpt_dir: Path
    optimizer_used: dict  # the optimizer settings after optimizer.scale_with_batch (metrics.json optimizer_used)


@dataclass
class LoopState:
    """What the loop accumulates; a checkpoint saves it with the model, optimizer and RNG."""

    step_loss: torch.Tensor  # per update, on the device
    grad_norm: torch.Tensor  # pre-clip, per update, on the device
    curves: dict = field(default_factory=lambda: {k: [] for k in CURVES})
    start: int = 0  # updates done before this process started (resume)
    init_loss: float | None = None  # the first step's loss (metrics.json initial_loss)
    reference_loss: float | None = None  # what divergence is judged against (`reference_loss`); None: not yet
    prior_wall_s: float = 0.0
    last_eval: int = 0
    diverged_at: int | None = None
    noise: list = field(default_factory=list)  # one summary per noise probe


def build_task(cfg, seed, device) -> tasks.Task:
    """The configured task, given the training sections only (what a run may depend on)."""
    task = tasks.resolve(cfg["task"]["name"])(train_config(cfg), seed, device)
    if not task.val_batches or not sum(len(xv) for xv, _ in task.val_batches):
        raise UserError(f"task.name: task '{cfg['task']['name']}' has an empty validation set; expected val_batches")
    return task


def check_args(batch_size, lr, out) -> None:
    """Bad flags fail before hours of training, with one line naming the flag. Then the progress
    file an earlier run of this job left beside its output goes: it is not this run's progress."""
    if batch_size <= 0:
        raise UserError(f"--batch-size: {batch_size} is not a positive integer")
    if not (lr > 0 and math.isfinite(lr)):
        raise UserError(f"--lr: {lr} is not a positive finite number")
    check_writable_dir(out)
    try:
        progress_path(out).unlink(missing_ok=True)
    except OSError:
        pass  # `lrscale status` sets a progress file older than the job's log aside anyway


def identity_of(cfg, batch_size, lr, seed) -> dict:
    """What a checkpoint (or a kept result) must match to be this job's."""
    return {"config_hash": config_hash(cfg), "batch_size": batch_size, "lr": lr, "seed": seed}


def restore_finished(out: Path, metrics: dict, name: str, seed) -> dict:
    """A packed SLURM job rerun for another member's failure: this member finished earlier in the same
    Snakemake invocation, so its metrics come back as written (lrscale.checkpoint, `finished.json`)."""
    atomic_write_json(out, metrics)
    log(f"{name} seed {seed}: finished earlier in this Snakemake invocation (SLURM job {metrics.get('slurm_job_id')}, "
        f"{metrics.get('wall_s', 0):.1f} s; its packed job is rerun for another member), so its metrics are "
        "restored, not trained again")
    with Progress(progress_path(out), name, metrics["planned_steps"], metrics["num_steps"], []) as progress:
        progress.finish(out, metrics)
    return metrics


def setup(cfg, batch_size, lr, seed, device, ckpt_dir, threads=None) -> Job:
    dev = pick_device(device)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)  # global RNG: dropout, and the init of tasks that draw from it (char_lm)
    task = build_task(cfg, seed, dev)
    model = task.model.to(dev)
    steps = num_steps(cfg, batch_size, task.tokens_per_sample)
    tc = cfg["train"]
    precision = tc["precision"] if tc["precision"] != "auto" else ("bf16" if dev.type == "cuda" else "fp32")
    data_seed, evals = stream_seed(seed, batch_size), eval_steps(steps, tc["eval_points"])
    opt = scaled_optimizer(cfg, batch_size, lr, task.tokens_per_sample)
    forward = model
    if tc["compile"] != "off":
        forward = torch.compile(model, mode="reduce-overhead" if tc["compile"] == "cudagraphs" else None)
    return Job(
        batch_size=batch_size, lr=lr, device=dev, task=task, model=model, forward=forward,
        optimizer=make_optimizer(model.parameters(), opt, lr, dev), optimizer_used=opt,
        lr_mult=lr_multiplier(cfg["schedule"], steps),
        data_gen=torch.Generator().manual_seed(data_seed), stream_seed=data_seed, steps=steps, evals=evals,
        precision=precision, probes=probe_steps(evals, tc["noise_probes"]), probe_batches=tc["noise_probe_batches"],
        autocast=torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext(),
        identity=identity_of(cfg, batch_size, lr, seed), ckpt_dir=Path(ckpt_dir),
    )


# ---------------------------------------------------------------- checkpoint state
def new_loop(job: Job) -> LoopState:
    """A loop at step 0, its per-update buffers sized to the run."""
    return LoopState(torch.zeros(job.steps, device=job.device), torch.zeros(job.steps, device=job.device))


def state_of(job: Job, loop: LoopState, done: int, wall_s: float) -> dict:
    """Everything a run continues from after `done` updates: a checkpoint's (and a stable-phase snapshot's) body."""
    return {
        "identity": job.identity, "step": done, "model": job.model.state_dict(),
        "optimizer": job.optimizer.state_dict(), **checkpoint.rng_state(job.data_gen, job.device),
        "step_loss": loop.step_loss[:done].cpu(), "grad_norm": loop.grad_norm[:done].cpu(),
        "curves": loop.curves, "init_loss": loop.init_loss,
        "reference_loss": loop.reference_loss, "wall_s": wall_s, "noise": loop.noise,
    }


def save_state(job: Job, loop: LoopState, done: int, wall_s: float) -> Path:
    return checkpoint.save(job.ckpt_dir, state_of(job, loop, done, wall_s))


def restore(job: Job, loop: LoopState, state: dict) -> None:
    """Continue from `state` (state_of's): weights, optimizer, random streams and what the loop recorded."""
    job.model.load_state_dict(state["model"])
    job.optimizer.load_state_dict(state["optimizer"])
    checkpoint.restore_rng(state, job.data_gen, job.device)
    loop.start, loop.curves, loop.prior_wall_s, loop.init_loss = (
        state["step"], state["curves"], state["wall_s"], state["init_loss"])
    loop.noise = state.get("noise", [])
    # a checkpoint from before the reference existed: its first step's loss, as it was judged then
    # (None until the first eval point when that checkpoint came before it: eval_point fills it)
    loop.reference_loss = state.get("reference_loss", state["init_loss"])
    loop.step_loss[: loop.start] = state["step_loss"].to(job.device)
    loop.grad_norm[: loop.start] = state["grad_norm"].to(job.device)
    loop.last_eval = max([0] + [s for s in job.evals if s <= loop.start])


def resume(job: Job, loop: LoopState) -> None:
    """Continue from this job's own checkpoint, if there is one."""
    state = checkpoint.load(job.ckpt_dir, job.identity, job.device, log)
    if state is None:
        return
    restore(job, loop, state)
    log(f"resumed from step {loop.start}")


# ---------------------------------------------------------------- the loop's phases
def eval_point(job: Job, loop: LoopState, done: int, lr_now: float, divergence_factor: float) -> bool:
    """Divergence check over the losses since the last eval, then evaluate. False = diverged."""
    window = min(DIVERGENCE_WINDOW, job.steps)  # a run shorter than the window is judged on all of it
    lo = max(0, loop.last_eval - window + 1)
    losses = loop.step_loss[lo:done].cpu()  # the one host sync of this interval
    if loop.init_loss is None:
        loop.init_loss = losses[0].item()
    if loop.reference_loss is None:  # resumed from a checkpoint written before the reference existed
        loop.reference_loss = loop.init_loss
    ref = loop.reference_loss
    limit = divergence_factor * ref if math.isfinite(ref) else -math.inf
    bad = first_bad_step(losses, loop.last_eval - lo, limit, window)
    if bad is not None:
        loop.diverged_at = lo + bad + 1
        first = max(0, bad - window + 1)
        seen = (f"loss {losses[bad].item():.4g}" if not math.isfinite(losses[bad].item()) else
                f"median of the losses of steps {lo + first + 1}-{lo + bad + 1} "
                f"{losses[first : bad + 1].double().median().item():.4g}")
        log(f"diverged at step {loop.diverged_at} ({seen}, limit {limit:.4g} = "
            f"{divergence_factor:g} x the reference loss {ref:.4g})")
        return False
    chunk = losses[loop.last_eval - lo :]
    point = (done, done * job.batch_size, chunk.double().mean().item(),
             evaluate(job.model, job.task, job.autocast), lr_now)
    for key, value in zip(CURVES, point):
        loop.curves[key].append(value)
    loop.last_eval = done
    return True


PROGRESS_EVERY_S = 2.0  # progress.json is rewritten at most this often between its 10% marks


class Progress:
    """How far the job is, twice. For people: a tqdm bar on a terminal, else one log line per 10%
    (Snakemake and SLURM logs stay short). As data: progress.json beside metrics.json
    (config.progress_path; `lrscale status` reads it), rewritten atomically at the 10% marks and
    the eval points (at most every PROGRESS_EVERY_S between marks), then once more with the job's
    final state: done or diverged once metrics.json is written; failed or preempted when the loop
    is left by an exception. A progress file that cannot be written is a warning, never the job's
    failure."""

    def __init__(self, path: Path, name: str, steps: int, start: int, evals: list[int]):
        self.path, self.name, self.steps, self.start, self.bar = path, name, steps, start, None
        self.next_pct = 10 * (100 * start // steps // 10 + 1)  # a resumed or branched run: the next 10% mark
        tenths = {math.ceil(steps * k / 10) for k in range(1, 11)}  # where the 10% lines fall
        self.points = sorted(s for s in set(evals) | tenths if s > start)  # where progress.json is rewritten
        self.point_set = set(self.points)  # looked up every step
        self.t0 = self.last_t = time.monotonic()
        self.done, self.val_losses, self.written, self.warned = start, [], 0, False
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=steps, initial=start, desc=name, unit="step")

    def update(self, done: int, val_losses: list) -> None:
        self.done, self.val_losses, line = done, val_losses, False
        if self.bar is not None:
            self.bar.update(1)
            if val_losses:
                self.bar.set_postfix(val_loss=f"{val_losses[-1]:.4f}", refresh=False)
        elif 100 * done / self.steps >= self.next_pct:
            last_val = f", val_loss {val_losses[-1]:.4f}" if val_losses else ""
            log(f"{self.name}: {self.next_pct}% (step {done}/{self.steps}{last_val}, "
                f"{time.monotonic() - self.t0:.1f} s since step {self.start})")
            self.next_pct, line = self.next_pct + 10, True
        # after its log line, so a live job's progress.json is never older than its log (status)
        if line or (done in self.point_set and (not self.written or time.monotonic() - self.last_t >= PROGRESS_EVERY_S)):
            later = [s for s in self.points if s > done]
            self.write("running", done, val_losses, next_step=later[0] if later else None)

    def write(self, state: str, done: int, val_losses: list, **extra) -> None:
        now = time.monotonic()
        record = {"state": state, "run": self.name, "step": done, "steps": self.steps,
                  "pct": 100 * done // self.steps, "val_loss": val_losses[-1] if val_losses else None,
                  "start_step": self.start, "elapsed_s": now - self.t0, "since_last_s": now - self.last_t,
                  "written_at": time.time(), **extra}
        self.last_t, self.written = now, self.written + 1
        try:
            atomic_write_json(self.path, record)
        except UserError as e:
            if not self.warned:
                log(f"warning: progress not recorded ({e}); training goes on")
                self.warned = True

    def finish(self, out: Path, metrics: dict) -> None:
        """The job's last word: its log line, then progress.json's final state."""
        log(f"wrote {out}: final_val_loss {metrics['final_val_loss']}, diverged {metrics['diverged']}, "
            f"{metrics['steps_per_s'] or 0:.1f} steps/s")
        self.write("diverged" if metrics["diverged"] else "done", metrics["num_steps"],
                   metrics["curves"]["val_loss"], final_val_loss=metrics["final_val_loss"])

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb) -> None:
        if self.bar is not None:
            self.bar.close()
        if error is not None:  # the loop left by an exception: at the last step it finished
            self.write("preempted" if isinstance(error, Preempted) else "failed", self.done, self.val_losses,
                       error=f"{type(error).__name__}: {error}")


# ---------------------------------------------------------------- summary
def _stats(values: torch.Tensor) -> dict:
    if values.numel() == 0:
        return {"median": None, "p95": None, "max": None}
    v = values.double()
    return {"median": v.median().item(), "p95": torch.quantile(v, 0.95).item(), "max": v.max().item()}


def summarize(cfg, point: dict, curves: dict, losses: torch.Tensor, norms: torch.Tensor, planned_steps: int,
              diverged_at: int | None, init_loss: float | None, train_samples: float | None = None) -> dict:
    """The result block of metrics.json from what the loop recorded. Pure: no clock, device or env.

    point: batch_size, lr, seed (and horizon, one of several); losses / norms: per-update CPU tensors of every update run
    (up to divergence); curves: one entry per eval point; train_samples: the training set's size in
    samples (None: fresh data every step, no epochs)."""
    tc = cfg["train"]
    n_done = len(losses)
    diverged = diverged_at is not None
    losses, norms = losses.double(), norms.double()
    window = max(1, math.ceil(tc["final_window"] * planned_steps))
    eval_window = max(1, math.ceil(tc["final_window"] * len(eval_steps(planned_steps, tc["eval_points"]))))
    final_train = final_val = train_std = None
    if not diverged:
        tail = losses[-window:]
        final_train = tail.mean().item()
        train_std = tail.std(unbiased=window > 1).item() if window > 1 else 0.0
        final_val = sum(curves["val_loss"][-eval_window:]) / len(curves["val_loss"][-eval_window:])
    finite_val = [v for v in curves["val_loss"] if math.isfinite(v)]
    clip = tc["grad_clip"]
    return {
        "schema_version": 2, "name": run_name(point["batch_size"], point["lr"], point.get("horizon")), **point,
        "task": cfg["task"]["name"],
        "config": train_config(cfg),  # the sections this job depends on, defaults filled
        "config_hash": config_hash(cfg), "curves": curves,
        "final_train_loss": final_train, "final_val_loss": final_val,
        "min_val_loss": min(finite_val) if finite_val else None,
        "train_loss_std": train_std, "initial_loss": init_loss,
        "converged": (not diverged) and train_std is not None and train_std < tc["convergence_threshold"],
        "diverged": diverged, "diverged_at_step": diverged_at,
        "num_steps": n_done, "planned_steps": planned_steps, "samples_seen": n_done * point["batch_size"],
        "epochs": n_done * point["batch_size"] / train_samples if train_samples else None,
        "overfit": None if diverged else overfit(curves["val_loss"], eval_window),
        "grad_norm": {
            **_stats(norms), "clip": clip,
            "clipped_fraction": (norms > clip).double().mean().item() if clip is not None and len(norms) else 0.0,
        },
    }


OVERFIT_SD = 3.0  # a rise of the val loss past this many of its step-to-step SDs is not noise
OVERFIT_MIN_RISE = 1e-3  # nor one below 0.1% of the loss (a noiseless curve's float jitter is no rise)
MIN_EVAL_POINTS = 5


def overfit(val_loss: list, final_window: int) -> bool | None:
    """Whether the val loss rose from its minimum by the end beyond its noise: the mean of the final
    window above the lowest mean of as many consecutive points before it by more than OVERFIT_SD
    noise SDs of one point (and 0.1% of the loss); windows on both sides, so the noise's own lowest
    point is not taken for the minimum. The noise from the curve's second differences (a smooth
    trend cancels in them: SD = median |Δ²| · 1.4826 / √6). None for a curve too short to tell."""
    v = [x for x in val_loss if x is not None and math.isfinite(x)]
    w = final_window
    if len(v) < max(MIN_EVAL_POINTS, 2 * w + 2) or len(v) != len(val_loss):
        return None
    second = sorted(abs(v[i + 1] - 2 * v[i] + v[i - 1]) for i in range(1, len(v) - 1))
    noise_sd = 1.4826 * second[len(second) // 2] / math.sqrt(6)
    lowest = min(sum(v[i : i + w]) / w for i in range(len(v) - 2 * w + 1))  # windows ending before the final one
    rise = sum(v[-w:]) / w - lowest
    return bool(rise > max(OVERFIT_SD * noise_sd, OVERFIT_MIN_RISE * abs(lowest)))


def throughput(ran: int, loop_s: float, batch_size: int, tokens_per_sample: int | None) -> dict:
    """Rates of the updates this process ran (a resumed job counts only its own)."""
    ok = loop_s > 0 and ran > 0
    return {
        "steps_per_s": ran / loop_s if ok else None,
        "samples_per_s": ran * batch_size / loop_s if ok else None,
        "tokens_per_s": ran * batch_size * tokens_per_sample / loop_s if ok and tokens_per_sample else None,
    }


def process_age_s() -> float | None:
    """Seconds since this process started: interpreter start-up, imports and GPU-slot wait (Linux /proc)."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22
        uptime_s = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime_s - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Timer:
    """Where a job's wall time went (metrics.json `timing`): each phase timed where it runs.
    On CUDA a phase boundary first waits for queued GPU work, so a step is charged to the
    training loop, not to the eval that happens to sync after it (eval syncs anyway)."""

    device: torch.device
    startup_s: float | None = None
    parts: dict = field(default_factory=lambda: {k: 0.0 for k in TIMED})

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def phase(self, name: str):
        self.sync()
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.sync()
            self.parts[name] += time.monotonic() - t0

    def block(self, loop_s: float, ran: int) -> dict:
        train_s = max(0.0, loop_s - sum(self.parts[k] for k in ("first_step_s", "eval_s", "probe_s", "checkpoint_s")))
        steady = ran - 1 if self.parts["first_step_s"] else ran
        return {"startup_s": self.startup_s, **self.parts, "train_s": train_s,
                "train_steps_per_s": steady / train_s if train_s > 0 and steady > 0 else None}


def run_facts(dev: torch.device, gpu_slot) -> dict:
    """Where and with what the job ran: memory, device, GPU slot, SLURM job, versions."""
    if dev.type == "cuda":
        peak_mb, name = torch.cuda.max_memory_allocated(dev) / 2**20, torch.cuda.get_device_name(dev)
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        name = platform.processor() or platform.machine()
    return {
        "peak_memory_mb": peak_mb, "device": str(dev), "device_name": name,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "gpu_slot": gpu_slot,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "torch_version": torch.__version__,
        "lrscale_version": __version__,
    }


# ---------------------------------------------------------------- train
@contextmanager
def sigterm_flag():
    """SIGTERM (SLURM preemption / time limit) sets flag["flag"] (the loop checkpoints at the next
    step boundary, then exits); the previous handler is back on the way out, exception or not."""
    flag, previous = {"flag": False}, signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, lambda *_: flag.update(flag=True))
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


def update(job: Job, task, loop: LoopState, step: int, params, clip) -> float:
    """Update step+1: set its lr, forward/backward on the next batch, clip, step. No host sync."""
    # 2. lr for this update (host-side arithmetic)
    lr_now = job.lr * job.lr_mult(step)
    for g in job.optimizer.param_groups:
        g["lr"] = lr_now
    # 3. forward/backward on the next batch of this (seed, B) stream
    x, y = task.sample_batch(job.data_gen, job.batch_size)
    with job.autocast:
        loss = task.loss(job.forward, x, y)
    job.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    # 4. grad norm before clipping (clipping silently caps the effective lr: record it)
    if clip is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    job.optimizer.step()
    loop.step_loss[step] = loss.detach().float()
    loop.grad_norm[step] = norm.detach().float()
    return lr_now


def run_updates(job: Job, loop: LoopState, cfg, progress, timer, t_start: float, checkpoint_every_s: float,
                stop: int | None = None, at_step: Callable[[int], None] | None = None) -> None:
    """Updates loop.start .. stop (default: the run's end), stopping early at a divergence.
    `at_step(done)`: called after each update's probe and eval (the stable phase's snapshots)."""
    task = faults.wrap_task(job.task, loop.start)  # the task itself unless a fault hook is set
    params = [p for p in job.model.parameters() if p.requires_grad]
    clip, eval_set, probe_set = cfg["train"]["grad_clip"], set(job.evals), set(job.probes)
    groups = probes.param_groups(job.model) if probe_set else {}
    last_ckpt = loop_t0 = time.monotonic()
    job.model.train()
    with progress, sigterm_flag() as terminate:  # SIGTERM: checkpoint at the next step boundary, then exit
        for step in range(loop.start, job.steps if stop is None else stop):  # `step` = updates done so far
            lr_now = update(job, task, loop, step, params, clip)
            done = step + 1
            if step == loop.start:  # the first update pays for torch.compile and kernel warm-up
                timer.sync()
                timer.parts["first_step_s"] = time.monotonic() - loop_t0
            # 5. noise probe (the trajectory never sees it), eval point: one host sync each
            if done in probe_set:
                with timer.phase("probe_s"):
                    loop.noise.append(probes.probe(job, done, params, groups, job.probe_batches))
            if done in eval_set:
                with timer.phase("eval_s"):
                    ok = eval_point(job, loop, done, lr_now, cfg["train"]["divergence_factor"])
                if not ok:
                    break
            if at_step is not None:
                at_step(done)
            # 6. progress, preemption, periodic checkpoint
            progress.update(done, loop.curves["val_loss"])
            if terminate["flag"]:
                path = save_state(job, loop, done, loop.prior_wall_s + time.monotonic() - t_start)
                log(f"SIGTERM: checkpoint written at step {done} to {path}")
                raise Preempted(f"preempted at step {done}; rerun to resume")
            if time.monotonic() - last_ckpt > checkpoint_every_s:
                with timer.phase("checkpoint_s"):
                    save_state(job, loop, done, loop.prior_wall_s + time.monotonic() - t_start)
                last_ckpt = time.monotonic()
    timer.sync()


def train(cfg, batch_size, lr, seed, out, device="auto", checkpoint_dir=None, checkpoint_every_s=300.0, threads=None,
          gpu_slot=None, horizon=None, start_at=None):
    """One run; `horizon`: one of a sweep's several horizons (budget.values), its budget and its name;
    `start_at(job, loop)`: where a run with no checkpoint of its own starts (lrscale.branches.start_from:
    the stable phase's snapshot at this horizon's cool-down)."""
    t_start, startup_s = time.monotonic(), process_age_s()
    # 1. setup: check the arguments, build the run, resume it (or branch it from the stable phase)
    out, cfg = Path(out), at_horizon(cfg, horizon)
    check_args(batch_size, lr, out)
    ckpt_dir = Path(checkpoint_dir or checkpoint.default_dir(out))
    if (kept := checkpoint.kept_finished(ckpt_dir, identity_of(cfg, batch_size, lr, seed))) is not None:
        return restore_finished(out, kept, run_name(batch_size, lr, horizon), seed)
    job = setup(cfg, batch_size, lr, seed, device, ckpt_dir, threads)
    loop = new_loop(job)
    resume(job, loop)
    if loop.start == 0 and start_at is not None:
        start_at(job, loop)
    if loop.start == 0:
        loop.reference_loss = reference_loss(job)
    timer = Timer(job.device, startup_s)
    timer.sync()
    timer.parts["setup_s"] = time.monotonic() - t_start
    name = run_name(batch_size, lr, horizon)
    log(f"{name} seed {seed}: {job.steps} steps on {job.device} ({job.precision}), {len(job.evals)} eval points")
    progress = Progress(progress_path(out), name, job.steps, loop.start, job.evals)
    loop_t0 = time.monotonic()
    if loop.diverged_at is None:  # a branch whose stable phase diverged before its cool-down has nothing to run
        run_updates(job, loop, cfg, progress, timer, t_start, checkpoint_every_s)
    loop_s, summary_t0 = time.monotonic() - loop_t0, time.monotonic()

    # 7. summary, the one write of metrics.json, clean-up of the checkpoint
    n_done = loop.diverged_at if loop.diverged_at is not None else job.steps
    metrics = {
        **summarize(cfg, {"batch_size": batch_size, "lr": lr, "seed": seed, **({"horizon": horizon} if horizon else {})},
                    loop.curves,
                    loop.step_loss[:n_done].cpu(), loop.grad_norm[:n_done].cpu(), job.steps, loop.diverged_at,
                    loop.init_loss, job.task.train_samples),
        "divergence_reference_loss": loop.reference_loss,  # non-finite: null (atomic_write_json)
        "precision": job.precision, "compile": cfg["train"]["compile"], "optimizer_used": job.optimizer_used,
        "noise": {"probe_batches": job.probe_batches, "probes": loop.noise},
        "wall_s": loop.prior_wall_s + time.monotonic() - t_start,
        **throughput(n_done - loop.start, loop_s, batch_size, job.task.tokens_per_sample),
        **run_facts(job.device, gpu_slot), "resumed_from_step": loop.start or None,
    }
    timer.parts["summary_s"] = time.monotonic() - summary_t0
    metrics["timing"] = timer.block(loop_s, n_done - loop.start)
    metrics["finished_at"] = time.time()  # Unix seconds: results.csv's `timestamp`
    atomic_write_json(out, metrics)  # the only write of metrics.json, at the very end
    checkpoint.clean(job.ckpt_dir)
    checkpoint.keep_finished(job.ckpt_dir, job.identity, metrics, log)  # remote (packed SLURM) jobs only
    progress.finish(out, metrics)  # its log line, then progress.json's final state
    return metrics
