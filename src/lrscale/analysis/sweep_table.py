"""The input of the fit: a results CSV (lrscale's, the seed study's, or a W&B summary export) read
into a Sweep, the loss table per batch size. Bad input is a one-line UserError naming the file,
the row and the column; NaN/inf losses and diverged runs are data (NaN), not errors."""

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import config
from ..errors import UserError
from ..fileio import read_text

FORMATS = {
    "lrscale": ["batch_size", "lr", "final_val_loss", "seed", "diverged"],
    "seed_study": ["batch_size", "lr", "final_train_loss", "final_val_loss", "train_loss_std", "converged", "num_steps"],
    "wandb_export": ["summary/batch_size", "summary/lr", "summary/final_val_loss"],
}


# ---------------------------------------------------------------------------- input
@dataclass
class Sweep:
    """Loss table: loss[b][seed] = array over lrs (NaN = diverged / non-finite)."""

    batch_sizes: list
    lrs: dict  # B -> sorted array of lrs tried at that B
    losses: dict  # B -> array (n_seeds, n_lrs)
    noise: dict = field(default_factory=dict)  # B -> estimated SE of one loss value (or None)
    fmt: str = "lrscale"
    seeds: list = field(default_factory=lambda: [0])
    clipped: dict = field(default_factory=dict)  # B -> array (n_seeds, n_lrs) of clipped_fraction (NaN: unknown)
    ran: dict = field(default_factory=dict)  # B -> bool (n_seeds, n_lrs): that run exists (absent B: all ran)
    grid: dict = field(default_factory=dict)  # B -> an adaptive sweep's grid lrs (absent: every lr is a grid lr)
    steps: dict = field(default_factory=dict)  # B -> array (n_seeds, n_lrs) of num_steps (NaN: unknown)
    epochs: dict = field(default_factory=dict)  # B -> array (n_seeds, n_lrs) of passes over the data (NaN: unknown)
    overfit: dict = field(default_factory=dict)  # B -> array (n_seeds, n_lrs): 1 overfit, 0 not, NaN unknown
    table: object = None  # the CSV as read: a pandas DataFrame of its cells as text (read_table only)

    def ran_mask(self, b) -> np.ndarray:
        """Which (seed, lr) cells of B were run: adaptive rounds add seeds at some lrs only."""
        return self.ran[b] if b in self.ran else np.ones(self.losses[b].shape, bool)

    def counts(self, b) -> np.ndarray:
        """Runs per lr at B."""
        return self.ran_mask(b).sum(axis=0)


def _num(path, row_no, col, text, integer=False):
    t = (text or "").strip()
    if t == "" and not integer:
        return math.nan  # lrscale writes null (diverged) as an empty cell
    try:
        v = float(t)
    except ValueError:
        raise UserError(f"{path}: row {row_no}, column '{col}': {t!r} is not a number") from None
    if integer:
        if not math.isfinite(v) or v != int(v) or v <= 0:
            raise UserError(f"{path}: row {row_no}, column '{col}': {t!r}; expected a positive integer")
        return int(v)
    return v


def _bool(text):
    return str(text).strip().lower() in ("true", "1", "yes")


RUN_COLUMNS = ["batch_size", "lr", "seed", "loss", "train_loss_std", "num_steps", "clipped_fraction", "epochs", "overfit"]


def _record(path, n, cells: dict, prefix) -> dict:
    """CSV row n as RUN_COLUMNS: NaN loss = diverged, NaN elsewhere = not in this CSV."""
    b = _num(path, n, prefix + "batch_size", cells[prefix + "batch_size"], integer=True)
    lr = _num(path, n, prefix + "lr", cells[prefix + "lr"])
    if not (math.isfinite(lr) and lr > 0):
        raise UserError(f"{path}: row {n}, column '{prefix}lr': {cells[prefix + 'lr']!r}; expected a positive number")
    loss = _num(path, n, prefix + "final_val_loss", cells[prefix + "final_val_loss"])
    seed = _num(path, n, "seed", cells["seed"]) if cells.get("seed", "").strip() else 0
    if not (math.isfinite(seed) and seed == int(seed) and seed >= 0):
        raise UserError(f"{path}: row {n}, column 'seed': {cells['seed']!r}; expected a non-negative integer")
    if _bool(cells.get("diverged", False)) or not math.isfinite(loss):
        loss = math.nan  # NaN/inf losses are data (diverged), not errors
    optional = {c: _num(path, n, c, cells[c]) if c in cells else math.nan for c in RUN_COLUMNS[4:-1]}
    flag = cells.get("overfit", "").strip()
    optional["overfit"] = math.nan if flag.lower() in ("", "nan", "none", "null") else float(_bool(flag))
    return {"batch_size": b, "lr": lr, "seed": int(seed), "loss": loss, **optional}


def _at_horizon(path, header: list, rows: list, horizon) -> list:
    """The data rows of one horizon (column `budget`): all of them when there is one; a CSV with
    several needs `horizon` (one fit per horizon: lr_opt moves with the budget)."""
    if "budget" not in header:
        if horizon is not None:
            raise UserError(f"{path}: --horizon {horizon}: no column 'budget'; expected an lrscale results.csv with one")
        return rows
    i = header.index("budget")
    budgets = sorted({r[i].strip() for r in rows if len(r) > i}, key=lambda v: (len(v), v))
    if horizon is None:
        if len(budgets) > 1:
            raise UserError(f"{path}: column 'budget' holds {len(budgets)} horizons ({', '.join(budgets)}); "
                            "expected one: pass --horizon with one of them (one fit per horizon)")
        return rows
    kept = [r for r in rows if len(r) > i and r[i].strip() == str(horizon)]
    if not kept:
        raise UserError(f"{path}: --horizon {horizon}: no run has budget {horizon}; expected one of {', '.join(budgets)}")
    return kept


def read_table(path, final_window=None, horizon=None) -> Sweep:
    """The results CSV as a Sweep. `final_window`: the fraction of each run its final losses
    average (train.final_window), which sets the SE of a final loss from train_loss_std. `horizon`:
    the budget whose runs to read, of a CSV with several (column `budget`)."""
    path = Path(path)
    final_window = config.defaults()["train"]["final_window"] if final_window is None else final_window
    text = read_text(path, "results CSV")
    if "\x00" in text:
        raise UserError(f"{path}: contains NUL bytes; expected a CSV")
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if not rows:
        raise UserError(f"{path}: empty file; expected a header row and one row per run")
    header = [h.strip() for h in rows[0]]
    fmt = next((f for f, cols in FORMATS.items() if all(c in header for c in cols)), None)
    if fmt is None:
        meant = "wandb_export" if "summary/batch_size" in header else "lrscale" if "seed" in header else "seed_study"
        missing = [c for c in FORMATS[meant] if c not in header]
        raise UserError(f"{path}: missing column(s) {missing}; expected lrscale results.csv, the seed study's CSV "
                        "or a W&B summary export")
    if len(rows) < 2:
        raise UserError(f"{path}: header only, no data rows")
    rows = [rows[0], *_at_horizon(path, header, rows[1:], horizon)]
    col = {h: i for i, h in enumerate(header)}
    prefix = "summary/" if fmt == "wandb_export" else ""
    records, seen = [], {}
    for n, r in enumerate(rows[1:], start=2):
        if len(r) < len(header):
            raise UserError(f"{path}: row {n} has {len(r)} fields; expected {len(header)}")
        rec = _record(path, n, {c: r[i] for c, i in col.items()}, prefix)
        b, lr, seed = key = rec["batch_size"], rec["lr"], rec["seed"]
        if key in seen:
            raise UserError(f"{path}: rows {seen[key]} and {n} are duplicates (batch_size {b}, lr {lr}, seed {seed}); "
                            "expected one row per run")
        seen[key] = n
        records.append(rec)
    sweep = from_records(records, fmt, final_window)
    sweep.table = _text_frame(header, rows[1:])
    if all(len(v) == 1 for v in sweep.lrs.values()):
        raise UserError(f"{path}: every batch size has a single lr; expected several lrs per batch size to locate an optimum")
    return sweep


def _text_frame(header, rows):
    """The CSV's cells as text, one column per header name (a report page shows them as written)."""
    import pandas as pd

    return pd.DataFrame([r[: len(header)] for r in rows], columns=header, dtype=str)


def from_records(records, fmt, final_window) -> Sweep:
    """A Sweep from runs given as RUN_COLUMNS tuples or dicts, one per run (read_table, from_runs, tests and
    benchmarks build these): per batch size a (seed x lr) table (NaN where a seed was not run at an lr);
    noise[B] the median SE of a final-window mean loss."""
    import pandas as pd  # at the table's edge only: the DAG build and lrscale status never load it

    rows = [r if isinstance(r, dict) else dict(zip(RUN_COLUMNS, r)) for r in records]
    runs = pd.DataFrame(rows).reindex(columns=RUN_COLUMNS)  # columns a record lacks: NaN (not known)
    if runs.empty:
        raise ValueError("no runs: a Sweep needs at least one (batch_size, lr, seed) run")
    dup = runs.duplicated(["batch_size", "lr", "seed"])
    if dup.any():
        b, lr, seed = runs.loc[dup.idxmax(), ["batch_size", "lr", "seed"]]
        raise ValueError(f"run batch_size {int(b)}, lr {lr}, seed {int(seed)} given twice; expected one row per run")
    seeds = sorted(int(s) for s in runs["seed"].unique())
    window_steps = np.maximum(1.0, np.ceil(final_window * runs["num_steps"]))
    runs = runs.assign(ran=1.0, se=runs["train_loss_std"] / np.sqrt(window_steps))  # SE of a final-window mean
    has_se = np.isfinite(runs[["train_loss_std", "num_steps", "loss"]]).all(axis=1) & (runs["num_steps"] > 0)
    sweep = Sweep([], {}, {}, {}, fmt, seeds)
    for b, at_b in runs.groupby("batch_size", sort=True):
        b = int(b)
        table = at_b.pivot(index="seed", columns="lr").reindex(seeds)  # lrs ascending, every seed a row
        sweep.batch_sizes.append(b)
        sweep.lrs[b] = table["loss"].columns.to_numpy(float)
        sweep.losses[b], sweep.clipped[b] = table["loss"].to_numpy(float), table["clipped_fraction"].to_numpy(float)
        sweep.ran[b] = table["ran"].notna().to_numpy()
        sweep.steps[b], sweep.epochs[b] = table["num_steps"].to_numpy(float), table["epochs"].to_numpy(float)
        sweep.overfit[b] = table["overfit"].to_numpy(float)
        ses = at_b["se"][has_se[at_b.index]]
        sweep.noise[b] = float(np.median(ses.to_numpy())) if len(ses) else None
    return sweep


def from_runs(runs, final_window) -> Sweep:
    """A Sweep from validated metrics.json dicts (what the adaptive planner reads)."""
    nan = lambda v: math.nan if v is None else float(v)  # noqa: E731
    records = [{"batch_size": m["batch_size"], "lr": float(m["lr"]), "seed": m["seed"],
                "loss": math.nan if m["diverged"] else nan(m["final_val_loss"]), "train_loss_std": nan(m["train_loss_std"]),
                "num_steps": nan(m["num_steps"]), "clipped_fraction": nan(m["grad_norm"]["clipped_fraction"]),
                "epochs": nan(m.get("epochs")), "overfit": nan(m.get("overfit"))} for m in runs]
    return from_records(records, "lrscale", final_window)


def set_grid(sweep: Sweep, grid_lrs) -> Sweep:
    """Tell the fit which lrs form the grid (round 1), so the local fits measure their windows in
    grid steps and count the lrs later rounds added between grid points."""
    sweep.grid = {b: np.sort(np.asarray(grid_lrs, float)) for b in sweep.batch_sizes}
    return sweep
