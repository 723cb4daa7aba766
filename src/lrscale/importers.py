"""`lrscale import`: a published sweep's table -> a results CSV that `lrscale fit` reads (issue 25.2).

  porian  Porian et al. 2024 (NeurIPS), "Resolving Discrepancies in Compute-Optimal Scaling of
          Language Models": data/experiment_results.pickle.xz of formll/resolving-scaling-law-discrepancies,
          a pandas DataFrame with one row per training run. Kept: the rows of their learning-rate x
          batch-size x β₂ sweep (column `hparams` == "sweep"; every row when there is no such column).
  table   any pickle or CSV, with a map from lrscale's columns to its own (`--columns`).

The loss taken (porian): `val/loss`'s last logged value, the final validation loss. Their own sweep
analysis reads the same final value; a smoothed training loss would mix the lr's effect on the end of
training with the smoothing window, and lrscale fits final losses of every run alike. A run whose last
value is missing or not finite is written as diverged (a result, not a hole).

Group columns kept for `lrscale fit --by`: params (N: from width and depth, see `params_of`, unless
the table has it), beta2, width, depth and, where present, dataset, warmup, decay. pandas only here,
at the table's edge; a pickle runs code when read: import only files you trust.
"""

import math
from pathlib import Path

from .errors import UserError
from .fileio import atomic_write_text

OUT_COLUMNS = ["batch_size", "lr", "final_val_loss", "seed", "diverged"]
PORIAN_COLUMNS = {"batch_size": "bs", "lr": "lr", "final_val_loss": "val/loss", "seed": "seed"}
PORIAN_KEEP = ["params", "beta2", "width", "depth", "dataset", "warmup", "decay"]
VOCAB = 50432  # their tokenizer's vocabulary (GPT-NeoX's, padded), in the embedding's parameter count


def params_of(width, depth):
    """Parameters of their decoder (open_lm) from width w and depth L: per layer 4w² for attention
    (q, k, v, out) and 3·w·f for a SwiGLU MLP whose hidden size f is 8w/3 rounded up to a multiple of
    256, plus the embedding, VOCAB·w. The N their scaling analysis uses (attention FLOPs aside)."""
    import numpy as np

    w, depth = np.asarray(width, float), np.asarray(depth, float)
    hidden = 256 * np.ceil(np.floor(8 * w / 3) / 256)
    return (4 * w + 3 * hidden) * w * depth + VOCAB * w


def final_value(cell) -> float:
    """A loss cell's final value: the last logged entry of a series (NaN when it is not finite: the
    run ended diverged, whatever it logged before), or the number itself."""
    if hasattr(cell, "iloc"):  # a pandas Series of logged values (their format)
        cell = cell.iloc[-1] if len(cell) else math.nan
    try:
        v = float(cell)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def read_frame(path: Path):
    """A pickle (.pkl/.pickle, optionally .xz/.gz/.bz2) or a CSV as a pandas DataFrame."""
    import pandas as pd

    if not path.is_file():
        raise UserError(f"{path}: no such file; expected a pickle or CSV of runs")
    try:
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_pickle(path)
    except Exception as e:  # noqa: BLE001  (a corrupt pickle raises anything)
        raise UserError(f"{path}: not a readable {'CSV' if path.suffix == '.csv' else 'pickle'} ({type(e).__name__}); "
                        "expected a pandas DataFrame with one row per run") from None
    if not isinstance(frame, pd.DataFrame):
        raise UserError(f"{path}: holds a {type(frame).__name__}; expected a pandas DataFrame with one row per run")
    return frame


def to_results(frame, columns: dict, keep: list, path) -> "object":
    """The runs as lrscale's results columns (+ the kept ones): final loss, diverged, seed 0 if absent."""
    import pandas as pd

    missing = [theirs for ours, theirs in columns.items() if theirs not in frame.columns and ours != "seed"]
    if missing:
        raise UserError(f"{path}: missing column(s) {missing}; expected them in the table (columns: "
                        f"{', '.join(map(str, frame.columns[:20]))}{' …' if len(frame.columns) > 20 else ''})")
    loss = frame[columns["final_val_loss"]].map(final_value)
    out = pd.DataFrame({
        "batch_size": pd.to_numeric(frame[columns["batch_size"]], errors="coerce"),
        "lr": pd.to_numeric(frame[columns["lr"]], errors="coerce"),
        "final_val_loss": loss,
        "seed": frame[columns["seed"]] if columns.get("seed") in frame.columns else 0,
        "diverged": ~loss.map(math.isfinite),
    })
    bad = out["batch_size"].isna() | (out["batch_size"] <= 0) | out["lr"].isna() | (out["lr"] <= 0)
    if bad.any():
        row = frame.index[bad.to_numpy()][0]
        raise UserError(f"{path}: row {row}: batch size {frame.loc[row, columns['batch_size']]!r}, lr "
                        f"{frame.loc[row, columns['lr']]!r}; expected positive numbers")
    out["batch_size"] = out["batch_size"].round().astype(int)
    for c in keep:
        if c in frame.columns:
            out[c] = frame[c].to_numpy()
    same = out.duplicated([c for c in out.columns if c not in ("final_val_loss", "diverged")], keep=False)
    if same.any():
        row = out[same].iloc[0]
        raise UserError(f"{path}: {int(same.sum())} runs share batch size, lr, seed and the kept columns (e.g. batch "
                        f"size {row['batch_size']}, lr {row['lr']:g}, seed {row['seed']}); expected a column that tells "
                        "them apart among the kept ones (import table --keep)")
    return out


def import_porian(path) -> "object":
    """Their sweep's runs as a results table (see the module's docstring for what is taken and why)."""
    path = Path(path)
    frame = read_frame(path)
    if "hparams" in frame.columns:
        frame = frame[frame["hparams"] == "sweep"]
    if frame.empty:
        raise UserError(f"{path}: no rows with hparams == 'sweep'; expected their learning-rate x batch-size sweep")
    if "params" not in frame.columns and {"width", "depth"} <= set(frame.columns):
        frame = frame.assign(params=params_of(frame["width"], frame["depth"]))
    return to_results(frame, PORIAN_COLUMNS, PORIAN_KEEP, path)


def import_table(path, columns: dict, keep: list) -> "object":
    path = Path(path)
    frame = read_frame(path)
    unknown = [c for c in keep if c not in frame.columns]
    if unknown:
        raise UserError(f"{path}: --keep column(s) {unknown} not in the table; expected some of "
                        f"{', '.join(map(str, frame.columns[:20]))}")
    return to_results(frame, {"seed": "seed", **columns}, keep, path)


def write(table, out) -> Path:
    """The results CSV, atomically; rows sorted by their group columns, batch size, lr and seed."""
    order = [c for c in table.columns if c not in OUT_COLUMNS] + ["batch_size", "lr", "seed"]
    table = table.sort_values(order, kind="stable")
    atomic_write_text(out, table.to_csv(index=False, float_format="%.10g"))
    return Path(out)
