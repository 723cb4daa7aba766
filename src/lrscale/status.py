"""`lrscale status`: where a sweep stands, from the files under results/<sweep>/ alone.

It reads, never writes, and never takes Snakemake's lock, so it works the same while Snakemake
runs (locally or on SLURM), after it finished, or after it crashed. Each job is what its files say:
  done / diverged  its metrics.json exists (the one write at the job's end)
  failed           its log holds a traceback or an `error:` line (the log path is listed), or its
                   progress file says the job's loop failed
  stalled          its progress file (or log) stopped changing for 3x the time its own pace predicts
  running          a log without metrics.json (% and ETA from its progress file)
  pending          no log yet (or files left by an earlier, finished run of a job to be rerun)
A job's progress is data: progress.json beside its metrics.json (lrscale.config.RUN_PROGRESS,
written by lrscale.train.Progress). One older than the job's log is set aside: the log is rewritten
when a job starts, so that file was left by an earlier run (or the job's last words, an error or
a preemption, went to the log after it). Only then, or for a job started by an lrscale that wrote
no progress file, are the log's own progress lines read.
"""

import json
import math
import re
import statistics
import time
from pathlib import Path

from . import plans
from .config import (HORIZON, RUN_BENCHMARK, RUN_LOG, RUN_METRICS, RUN_PROGRESS, SNAPSHOT, STABLE_BENCHMARK,
                     STABLE_DIR, STABLE_LOG, branched, grid, horizons, lr_name, run_path)
from .errors import UserError

FAILED = re.compile(r"Traceback \(most recent call last\)|lrscale train: error:")
FINISHED = ("done", "diverged")  # a progress file's final states: metrics.json was written
# A log's own progress lines, read only where no current progress file is (see the docstring).
LOG_PROGRESS = re.compile(r"(\d+)% \(step (\d+)/(\d+)(?:, val_loss [^,)]+)?, ([\d.]+) s since step (\d+)\)")
LOG_WROTE = re.compile(r"\[lrscale train\] wrote .*metrics")  # a finished job's last line
STALL_FACTOR = 3.0  # a job quiet this many times the expected gap to its next progress point is stalled
LEAST_STALL_S = 300.0


def _kind(job: dict) -> tuple:
    """What sets a job's length: its batch size and horizon."""
    return job["batch_size"], job.get("horizon")


def _path(root: Path, pattern: str, job: dict) -> Path:
    return root / run_path(pattern, job["batch_size"], job["lr"], job["seed"], job.get("horizon"))


def _benchmark_s(path: Path) -> float | None:
    """A finished job's wall seconds from its Snakemake benchmark file; None if not readable."""
    try:
        return float(path.read_text().splitlines()[1].split("\t")[0])
    except (OSError, IndexError, ValueError):
        return None


def _typical_wall_s(root: Path, finished: list) -> dict:
    """Median wall seconds of the finished jobs per batch size and horizon (the larger of Snakemake's
    benchmark file and metrics.json's wall_s: a packed member restored within its invocation,
    lrscale.train.restore_finished, took seconds where its training took wall_s); key None: over
    every job."""
    walls = {}
    for j in finished:
        s = [v for v in (_benchmark_s(_path(root, RUN_BENCHMARK, j)), j.get("wall_s")) if isinstance(v, (int, float))]
        if s:
            walls.setdefault(_kind(j), []).append(float(max(s)))
    typical = {b: statistics.median(v) for b, v in walls.items()}
    every = [s for v in walls.values() for s in v]
    typical[None] = statistics.median(every) if every else None
    return typical


def _tail(path: Path, size=65536) -> str:
    with open(path, "rb") as f:
        f.seek(max(path.stat().st_size - size, 0))
        return f.read().decode(errors="replace")


def read_progress(path: Path, log_mtime: float) -> dict | None:
    """A job's progress file, with its mtime as `mtime`; None when there is none, it cannot be read,
    or it is older than the job's log (left by an earlier run of the job)."""
    try:
        mtime = path.stat().st_mtime
        if mtime < log_mtime:
            return None
        p = json.loads(path.read_text())
        return {**p, "mtime": mtime} if isinstance(p, dict) and isinstance(p.get("state"), str) else None
    except (OSError, ValueError):
        return None


def _from_log(text: str, mtime: float) -> dict | None:
    """What a log's last progress line says, in a progress file's terms (its lines came every 10%)."""
    lines = LOG_PROGRESS.findall(text)
    if not lines:
        return None
    pct, done, steps, elapsed, start = lines[-1]
    done, steps = int(done), int(steps)
    return {"state": "running", "pct": int(pct), "step": done, "steps": steps, "elapsed_s": float(elapsed),
            "start_step": int(start), "next_step": done + 0.1 * steps, "mtime": mtime}


def _running(progress: dict | None, age: float, typical_s) -> dict:
    """A job with a log and no metrics.json: running (with % and ETA) or stalled. `age`: seconds
    since its progress last changed."""
    if progress is None:  # start-up, before its first progress point: only finished jobs say how long that may take
        quiet = max(LEAST_STALL_S, STALL_FACTOR * typical_s) if typical_s else math.inf
        state = "stalled" if age > quiet else "running"
        return {"state": state, "pct": 0, "eta_s": typical_s, "quiet_s": age}
    done, steps, start, elapsed = progress["step"], progress["steps"], progress["start_step"], progress["elapsed_s"]
    rate = (done - start) / elapsed if elapsed > 0 and done > start else None
    eta = (steps - done) / rate if rate else typical_s
    gap = (max(progress.get("next_step") or steps, done + 1) - done) / rate if rate else None  # to its next point
    state = "stalled" if gap is not None and age > max(LEAST_STALL_S, STALL_FACTOR * gap) else "running"
    return {"state": state, "pct": int(progress["pct"]), "eta_s": None if eta is None else max(eta - age, 0.0),
            "quiet_s": age, "projected_s": steps / rate if rate else None}


def _base(root: Path, point: dict) -> dict:
    horizon = {"horizon": point["horizon"]} if point.get("horizon") else {}
    return {"batch_size": point["batch_size"], "lr": point["lr"], "seed": point["seed"], **horizon,
            "log": str(_path(root, RUN_LOG, point))}


def finished_state(root: Path, point: dict) -> dict | None:
    """A job whose metrics.json exists: done or diverged (failed when unreadable); None otherwise."""
    out, metrics = _base(root, point), _path(root, RUN_METRICS, point)
    if not metrics.exists():
        return None
    try:
        m = json.loads(metrics.read_text())
        return {**out, "state": "diverged" if m["diverged"] else "done", "final_val_loss": m["final_val_loss"],
                "wall_s": m.get("wall_s")}
    except (OSError, ValueError, KeyError, TypeError):
        return {**out, "state": "failed", "reason": f"{metrics} is not a readable metrics file"}


def job_state(root: Path, point: dict, now: float, typical: dict) -> dict:
    """A job without metrics.json: pending, failed, running or stalled, from its progress file and log."""
    out = _base(root, point)
    log = Path(out["log"])
    try:
        log_mtime, text = log.stat().st_mtime, _tail(log)
    except OSError:  # no log yet (or Snakemake is replacing it right now)
        return {**out, "state": "pending"}
    progress = read_progress(_path(root, RUN_PROGRESS, point), log_mtime)
    if (progress["state"] in FINISHED) if progress is not None else LOG_WROTE.search(text):
        return {**out, "state": "pending"}  # left by an earlier run whose metrics.json was removed: to be rerun
    if FAILED.search(text):
        last = [ln for ln in text.splitlines() if ln.strip()]
        return {**out, "state": "failed", "reason": last[-1].strip() if last else "error in the log"}
    if progress is not None and progress["state"] == "failed":
        return {**out, "state": "failed", "reason": str(progress.get("error") or "failed (its progress file)")}
    try:
        progress = progress or _from_log(text, log_mtime)
        age = now - (progress["mtime"] if progress else log_mtime)
        return {**out, **_running(progress, age, typical.get(_kind(point)) or typical[None])}
    except (KeyError, TypeError, ValueError):  # a progress file not in the shape lrscale.train writes
        return {**out, **_running(None, now - log_mtime, typical.get(_kind(point)) or typical[None])}


def points_of(cfg: dict, root: Path) -> list[dict]:
    """The sweep's jobs: the grid, then each adaptive round's planned points that exist so far."""
    points = grid(cfg)
    for plan in sorted((root / "rounds").glob("round*.json")):
        try:
            points += plans.read_plan(plan)["points"]
        except UserError:
            continue  # a plan being written or damaged: its round is not known yet
    seen, unique = set(), []
    for p in points:
        key = (p["batch_size"], lr_name(p["lr"]), p["seed"], p.get("horizon"))  # as their paths name them
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def stable_phases(cfg: dict, root: Path, now: float | None = None) -> dict | None:
    """wsd with several horizons: how many (B, lr, seed) stable phases are done (every snapshot
    written), running (their % from their progress file), failed (their log) or pending; and the
    seconds they have left (`left_s`: the running ones' from their pace, `pending_s`: one per pending
    phase, the median finished phase of its batch size, else of any; None while nothing says). None
    for other sweeps."""
    if not branched(cfg):
        return None
    now = time.time() if now is None else now
    counts, running, walls, left_s, pending_b = {"done": 0, "running": 0, "failed": 0, "pending": 0}, [], {}, 0.0, []
    for p in sorted({(q["batch_size"], lr_name(q["lr"]), q["seed"]) for q in grid(cfg)}):
        fields = dict(batch=p[0], lr=p[1], seed=p[2])
        out, log = root / STABLE_DIR.format(**fields), root / STABLE_LOG.format(**fields)
        if all((out / SNAPSHOT.format(horizon=h)).is_file() for h in horizons(cfg)):
            counts["done"] += 1
            wall = _benchmark_s(root / STABLE_BENCHMARK.format(**fields))
            if wall is not None:
                walls.setdefault(p[0], []).append(wall)
        elif not log.is_file():
            counts["pending"] += 1
            pending_b.append(p[0])
        elif FAILED.search(_tail(log)):
            counts["failed"] += 1
        else:
            counts["running"] += 1
            progress = read_progress(out / "progress.json", log.stat().st_mtime)
            running.append(progress["pct"] if progress and isinstance(progress.get("pct"), int) else 0)
            try:
                left_s += _running(progress, now - progress["mtime"], None)["eta_s"] or 0.0
            except (KeyError, TypeError, ValueError):
                pass  # no pace yet (or a progress file not in lrscale's shape): nothing known left
    every = [w for v in walls.values() for w in v]
    typical = {b: statistics.median(v) for b, v in walls.items()}
    pending_s = [typical.get(b, statistics.median(every) if every else None) for b in pending_b]
    return {**counts, "running_pct": sorted(running, reverse=True), "left_s": left_s, "pending_s": pending_s}


def collect(cfg: dict, root: Path, now: float | None = None) -> dict:
    """Every job's state, the totals, the sweep's ETA and where its W&B run is (or will be)."""
    now = time.time() if now is None else now
    points = points_of(cfg, root)
    finished = [finished_state(root, p) for p in points]  # each metrics.json read once
    typical = _typical_wall_s(root, [j for j in finished if j and j["state"] != "failed"])
    jobs = [j or job_state(root, p, now, typical) for p, j in zip(points, finished)]
    projected = [j["projected_s"] for j in jobs if j.get("projected_s")]
    if typical[None] is None and projected:  # nothing finished yet: the running jobs' own pace
        typical[None] = statistics.median(projected)
    totals = {s: sum(j["state"] == s for j in jobs) for s in ("done", "diverged", "running", "stalled", "failed", "pending")}
    running = [j for j in jobs if j["state"] == "running"]
    left_s = sum(j["eta_s"] or 0.0 for j in running)
    pending_s = [typical.get(_kind(j)) or typical[None] for j in jobs if j["state"] == "pending"]
    stable = stable_phases(cfg, root, now)
    parallel = len(running)
    if stable:  # a branched sweep: its cool-downs wait for the stable phases, which take most of its time
        left_s, pending_s, parallel = left_s + stable["left_s"], pending_s + stable["pending_s"], parallel + stable["running"]
    eta = None if any(s is None for s in pending_s) else (left_s + sum(pending_s)) / max(parallel, 1)
    return {"sweep": cfg["sweep"]["name"], "results": str(root), "jobs": jobs, "totals": totals,
            "eta_s": eta if totals["running"] + totals["pending"] else 0.0, "wandb": _wandb(cfg, root),
            "stable_phases": stable}


def _wandb(cfg: dict, root: Path) -> dict:
    facts = root / "wandb_run.json"
    try:
        f = json.loads(facts.read_text())
        if f.get("mode") == "disabled":
            return {"written": True, "project": None, "name": None, "run_id": None, "mode": "disabled"}
        return {"written": True, "project": f["project"], "name": f["name"], "run_id": f["run_id"], "mode": f["mode"]}
    except (OSError, ValueError, KeyError):
        w = cfg["wandb"]
        return {"written": False, "project": w["project"], "name": cfg["sweep"]["name"], "mode": w["mode"]}


GLYPH = {"failed": "✗", "stalled": "stalled", "pending": "·", "diverged": "div"}
COLOUR = {"done": "32", "best": "1;33", "diverged": "33", "running": "36", "stalled": "35", "failed": "1;31",
          "pending": "2"}


def _cells(status: dict) -> dict:
    """(B, lr) -> (text, colour key): the seeds of a cell collapsed, worst news first."""
    by_cell = {}
    for j in status["jobs"]:
        by_cell.setdefault((j["batch_size"], j["lr"]), []).append(j)
    means = {k: statistics.fmean(v) for k, js in by_cell.items()  # over the seeds done so far
             if (v := [j["final_val_loss"] for j in js if j["state"] == "done"])}
    best = {}
    for (b, lr), v in means.items():
        if v < means.get(best.get(b), math.inf):
            best[b] = (b, lr)
    cells = {}
    for key, js in by_cell.items():
        n, states = len(js), [j["state"] for j in js]
        finished = sum(s in ("done", "diverged") for s in states)
        count = f" {finished}/{n}" if n > 1 and finished < n else ""
        for s in ("failed", "stalled"):
            if s in states:
                cells[key] = (GLYPH[s] + count, s)
                break
        else:
            if "running" in states:
                cells[key] = (f"▶{max(j['pct'] for j in js if j['state'] == 'running')}%" + count, "running")
            elif finished == 0:
                cells[key] = (GLYPH["pending"], "pending")
            elif key in means:
                star = best.get(key[0]) == key
                div = " +div" if "diverged" in states else ""  # a seed diverged where the others did not
                cells[key] = (f"{means[key]:.4g}" + (" ★" if star else "") + div + count, "best" if star else "done")
            else:
                cells[key] = (GLYPH["diverged"] + count, "diverged")
    return cells


def _grid_lines(jobs: list, paint, label: str) -> list:
    """One grid of batch sizes x lrs, under a line that says what it holds."""
    cells = _cells({"jobs": jobs})
    bs = sorted({b for b, _ in cells})
    lrs = sorted({lr for _, lr in cells})
    head = ["B \\ lr"] + [f"{lr:.3g}" for lr in lrs]
    rows = [[f"B={b}"] + [cells.get((b, lr), ("", "pending"))[0] for lr in lrs] for b in bs]
    width = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    seeds = max((sum(1 for j in jobs if (j["batch_size"], j["lr"]) == k) for k in cells), default=0)
    lines = [f"{label}{len(bs)} batch sizes x {len(lrs)} lrs, up to {seeds} seed(s) per cell (n/N: seeds finished)",
             "  ".join(h.rjust(w) for h, w in zip(head, width))]
    for b, row in zip(bs, rows):
        keys = ["pending"] + [cells.get((b, lr), ("", "pending"))[1] for lr in lrs]
        lines.append("  ".join(paint(t.rjust(w), k) if t and i else t.rjust(w)
                               for i, (t, w, k) in enumerate(zip(row, width, keys))))
    return lines


def _duration(s) -> str:
    if s is None:
        return "unknown (no job has finished yet)"
    s = int(round(s))
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else f"{s // 60} min {s % 60:02d} s"


def render(status: dict, colour: bool = False) -> str:
    """The grid (batch sizes x lrs; one per horizon of several), a footer with totals, ETA and the W&B
    run, then the failures."""
    paint = (lambda text, key: f"\x1b[{COLOUR[key]}m{text}\x1b[0m") if colour else (lambda text, key: text)
    by_horizon = {}
    for j in status["jobs"]:
        by_horizon.setdefault(j.get("horizon"), []).append(j)
    where = status["results"] + ("" if Path(status["results"]).is_dir() else ": nothing run yet")
    lines = [f"sweep {status['sweep']} ({where}): {len(by_horizon)} horizons"]
    for h, jobs in sorted(by_horizon.items(), key=lambda kv: kv[0] or 0):
        lines += _grid_lines(jobs, paint, f"{HORIZON.format(horizon=h)}: " if h else "")
    if list(by_horizon) in ([None], []):  # one horizon: its grid's line is the sweep's, as it always was
        lines = [f"sweep {status['sweep']} ({where}): " + lines[1], *lines[2:]] if len(lines) > 1 else lines
    stable = status.get("stable_phases")
    if stable:  # wsd: each grid's runs wait for their (B, lr, seed)'s shared stable phase
        pct = "".join(f" ▶{p}%" for p in stable["running_pct"][:8]) + (" …" if len(stable["running_pct"]) > 8 else "")
        lines.append("stable phases (shared by the horizons): " + " · ".join(
            f"{k} {stable[k]}" for k in ("done", "running", "failed", "pending")) + pct)
    t = status["totals"]
    lines.append(" · ".join(f"{k} {v}" for k, v in t.items()) + f"  (of {len(status['jobs'])} jobs)")
    stuck = t["failed"] + t["stalled"]
    if status["eta_s"] != 0:
        lines.append("ETA: " + _duration(status["eta_s"]))
    else:
        lines.append("ETA: finished" if not stuck else f"ETA: nothing left running; {stuck} job(s) failed or stalled (below)")
    w = status["wandb"]
    if w["mode"] == "disabled":
        lines.append("W&B: disabled (wandb.mode)")
    else:
        lines.append(f"W&B: run {w['name']!r} in project {w['project']!r} ({w['mode']}" +
                     (f", id {w['run_id']}, from the last finished sweep)" if w["written"] else ", written when the sweep ends)"))
    for j in status["jobs"]:
        if j["state"] in ("failed", "stalled"):
            why = j.get("reason") or f"no progress for {_duration(j['quiet_s'])}"
            at = f" {HORIZON.format(horizon=j['horizon'])}" if j.get("horizon") else ""
            lines.append(paint(f"{GLYPH[j['state']]} B={j['batch_size']} lr={j['lr']:.3g}{at} seed {j['seed']}: {why}",
                               j["state"]))
            lines.append(f"    log: {j['log']}")
    return "\n".join(lines)
