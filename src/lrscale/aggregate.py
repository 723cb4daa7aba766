"""metrics.json files -> results.csv (one row per run, grid order). Never talks to W&B."""

import csv
import io
import math
import os

from . import metrics as metrics_io
from .errors import UserError
from .fileio import atomic_write_text

# The seed study's columns first (its tooling keeps working), then ours.
COLUMNS = [
    "batch_size", "lr", "final_train_loss", "final_val_loss", "train_loss_std", "converged", "num_steps",
    "seed", "diverged", "diverged_at_step", "min_val_loss", "samples_seen", "wall_s", "steps_per_s",
    "name", "config_hash",
    "clipped_fraction",  # appended (columns are only ever appended): grad_norm.clipped_fraction
    "b_simple", "noise_kurtosis", "noise_tail_index",  # the run's last gradient-noise probe (empty without one)
    "timestamp",  # Unix seconds at the job's end (metrics.json finished_at), as the seed study's CSV had it
]
INTEGER_COLUMNS = ("batch_size", "num_steps", "seed", "diverged_at_step", "samples_seen")  # empty = none
NOISE_COLUMNS = {"b_simple": "b_simple", "noise_kurtosis": "kurtosis", "noise_tail_index": "tail_index"}  # -> probe field


def finite_probes(m: dict) -> list[dict]:
    """The run's noise probes with finite gradients, in step order ([] when probes are off, or metrics v1)."""
    return [p for p in (m.get("noise") or {}).get("probes", []) if p.get("finite")]


def last_probe(m: dict) -> dict:
    """The run's last finite noise probe, or {}."""
    finite = finite_probes(m)
    return finite[-1] if finite else {}


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


def load_all(paths) -> list[dict]:
    """Validate every metrics file (a corrupt one is an error naming it, never skipped)."""
    runs = [metrics_io.read(p) for p in paths]
    for p, m in zip(paths, runs):  # files from before `finished_at`: written once, at the job's end
        m.setdefault("finished_at", os.path.getmtime(p))
    seen = {}
    for p, m in zip(paths, runs):
        key = (m["batch_size"], m["lr"], m["seed"])
        if key in seen:
            raise UserError(f"{p}: duplicate run {m['name']} seed {m['seed']} (also in {seen[key]})")
        seen[key] = p
    return sorted(runs, key=lambda m: (m["batch_size"], m["lr"], m["seed"]))


def rows(runs) -> list[dict]:
    def flat(m):
        probe = last_probe(m)
        return {**m, "clipped_fraction": m["grad_norm"]["clipped_fraction"], "timestamp": m.get("finished_at"),
                **{col: probe.get(field) for col, field in NOISE_COLUMNS.items()}}

    return [{c: flat(m).get(c) for c in COLUMNS} for m in runs]


def write_results_csv(paths, out) -> list[dict]:
    runs = load_all(paths)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows(runs):
        w.writerow([_cell(r[c]) for c in COLUMNS])
    atomic_write_text(out, buf.getvalue())
    print(f"[lrscale aggregate] wrote {out}: {len(runs)} runs")
    return runs
