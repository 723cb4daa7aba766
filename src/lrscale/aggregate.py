"""metrics.json files -> results.csv (one row per run, grid order). Never talks to W&B."""

import csv
import io
import math

from .fileio import atomic_write_text
from .metrics import last_probe, load_all

# The seed study's columns first (its tooling keeps working), then ours.
COLUMNS = [
    "batch_size", "lr", "final_train_loss", "final_val_loss", "train_loss_std", "converged", "num_steps",
    "seed", "diverged", "diverged_at_step", "min_val_loss", "samples_seen", "wall_s", "steps_per_s",
    "name", "config_hash",
    "clipped_fraction",  # appended (columns are only ever appended): grad_norm.clipped_fraction
    "b_simple", "noise_kurtosis", "noise_tail_index",  # the run's last gradient-noise probe (empty without one)
    "timestamp",  # Unix seconds at the job's end (metrics.json finished_at), as the seed study's CSV had it
    "epochs", "overfit",  # passes over the training set (empty: fresh data); val loss rose past its noise
    "budget", "budget_unit",  # the run's budget.value (its horizon) and unit: samples, steps or tokens
]
INTEGER_COLUMNS = ("batch_size", "num_steps", "seed", "diverged_at_step", "samples_seen", "budget")  # empty = none
NOISE_COLUMNS = {"b_simple": "b_simple", "noise_kurtosis": "kurtosis", "noise_tail_index": "tail_index"}  # -> probe field


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


def rows(runs) -> list[dict]:
    def flat(m):
        probe = last_probe(m)
        budget = (m.get("config") or {}).get("budget") or {}
        return {**m, "clipped_fraction": m["grad_norm"]["clipped_fraction"], "timestamp": m.get("finished_at"),
                "budget": budget.get("value"), "budget_unit": budget.get("unit"),
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
