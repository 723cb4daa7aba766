"""lr_opt per batch size and the power-law fit lr_opt = C * B^beta, with honest uncertainty.

Every past version of this study was fooled by its analysis: argmin on a coarse grid, optima at the
grid's edge fitted as if real, flat landscapes fitted anyway, 2xSE called a 95% CI on 4 points.
Here: sub-grid location (parabola in log10 lr), flags with reasons (edge / flat / insufficient)
that exclude points by default and say so, t-based CIs with n-2 dof, a seeded bootstrap, and a
verdict that never claims more than the CI allows.
"""

import csv
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.interpolate import Akima1DInterpolator

from . import PLOTS, config
from .aggregate import load_all
from .errors import UserError
from .fileio import atomic_write_json, atomic_write_text, read_text

HYPOTHESIS_NAMES = {0.5: "square-root / Gaussian", 0.667: "Laplace", 1.0: "linear"}
REL_FLAT_TOL = 0.01  # loss range below 1% of the loss = no identifiable optimum
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


def _record(path, n, cells: dict, prefix) -> tuple:
    """(batch_size, lr, seed, loss, train_loss_std, num_steps) of CSV row n; NaN loss = diverged."""
    b = _num(path, n, prefix + "batch_size", cells[prefix + "batch_size"], integer=True)
    lr = _num(path, n, prefix + "lr", cells[prefix + "lr"])
    if not (math.isfinite(lr) and lr > 0):
        raise UserError(f"{path}: row {n}, column '{prefix}lr': {cells[prefix + 'lr']!r}; expected a positive number")
    loss = _num(path, n, prefix + "final_val_loss", cells[prefix + "final_val_loss"])
    seed = int(_num(path, n, "seed", cells["seed"])) if cells.get("seed", "").strip() else 0
    if _bool(cells.get("diverged", False)) or not math.isfinite(loss):
        loss = math.nan  # NaN/inf losses are data (diverged), not errors
    std = _num(path, n, "train_loss_std", cells["train_loss_std"]) if "train_loss_std" in cells else math.nan
    steps = _num(path, n, "num_steps", cells["num_steps"]) if "num_steps" in cells else math.nan
    return b, lr, seed, loss, std, steps


def read_table(path, final_window=None) -> Sweep:
    """The results CSV as a Sweep. `final_window`: the fraction of each run its final losses
    average (train.final_window), which sets the SE of a final loss from train_loss_std."""
    path = Path(path)
    final_window = config.defaults()["train"]["final_window"] if final_window is None else final_window
    text = read_text(path, "results CSV")
    if "\x00" in text:
        raise UserError(f"{path}: contains NUL bytes; expected a CSV")
    rows = list(csv.reader(text.splitlines()))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise UserError(f"{path}: empty file; expected a header row and one row per run")
    header = [h.strip() for h in rows[0]]
    fmt = next((f for f, cols in FORMATS.items() if all(c in header for c in cols)), None)
    if fmt is None:
        if "summary/batch_size" in header:
            missing = [c for c in FORMATS["wandb_export"] if c not in header]
        else:
            missing = [c for c in FORMATS["seed_study"] if c not in header]
            missing = [c for c in FORMATS["lrscale"] if c not in header] if "seed" in header else missing
        raise UserError(f"{path}: missing column(s) {missing}; expected lrscale results.csv, the seed study's CSV "
                        "or a W&B summary export")
    if len(rows) < 2:
        raise UserError(f"{path}: header only, no data rows")
    col = {h: i for i, h in enumerate(header)}
    prefix = "summary/" if fmt == "wandb_export" else ""
    records, seen = [], {}
    for n, r in enumerate(rows[1:], start=2):
        if len(r) < len(header):
            raise UserError(f"{path}: row {n} has {len(r)} fields; expected {len(header)}")
        b, lr, seed, loss, std, steps = _record(path, n, {c: r[i] for c, i in col.items()}, prefix)
        key = (b, lr, seed)
        if key in seen:
            raise UserError(f"{path}: rows {seen[key]} and {n} are duplicates (batch_size {b}, lr {lr}, seed {seed}); "
                            "expected one row per run")
        seen[key] = n
        records.append((b, lr, seed, loss, std, steps))
    batch_sizes = sorted({r[0] for r in records})
    seeds = sorted({r[2] for r in records})
    sweep = Sweep(batch_sizes, {}, {}, {}, fmt, seeds)
    for b in batch_sizes:
        lrs = sorted({r[1] for r in records if r[0] == b})
        table = np.full((len(seeds), len(lrs)), np.nan)
        ses = []
        for rb, lr, seed, loss, std, steps in records:
            if rb == b:
                table[seeds.index(seed), lrs.index(lr)] = loss
                if math.isfinite(std) and math.isfinite(steps) and steps > 0 and math.isfinite(loss):
                    ses.append(std / math.sqrt(max(1.0, math.ceil(final_window * steps))))  # SE of a final-window mean
        sweep.lrs[b], sweep.losses[b] = np.array(lrs), table
        sweep.noise[b] = float(np.median(ses)) if ses else None
    if all(len(v) == 1 for v in sweep.lrs.values()):
        raise UserError(f"{path}: every batch size has a single lr; expected several lrs per batch size to locate an optimum")
    return sweep


# ---------------------------------------------------------------------------- locate
def _seed_mean(table):
    """Mean over seeds; an lr where any seed diverged counts as diverged (never fitted through)."""
    return np.where(np.isnan(table).any(axis=0), np.nan, np.nanmean(np.where(np.isnan(table), 0, table), axis=0))


def _best(mean) -> int:
    """Index of the lowest finite loss (NaN = diverged)."""
    return int(np.nanargmin(np.where(np.isfinite(mean), mean, np.inf)))


def quad_fit(x, y, w=None):
    """Weighted least-squares y = a x^2 + b x + c; returns (a, b, c)."""
    w = np.ones_like(x) if w is None else w
    A = np.vstack([x**2, x, np.ones_like(x)]).T * np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(A, y * np.sqrt(w), rcond=None)
    return coef


def locate(lrs, loss, estimator="parabola"):
    """lr_opt for one batch size from seed-mean losses. Returns dict(lr_opt, loss_opt, i_best, fit)."""
    x = np.log10(lrs)
    finite = np.isfinite(loss)
    i = _best(loss)
    out = {"lr_opt": float(lrs[i]), "loss_opt": float(loss[i]), "i_best": i, "parabola": None}
    if estimator == "argmin":
        return out
    lo_ok = i > 0 and finite[i - 1]
    hi_ok = i < len(x) - 1 and finite[i + 1]
    if not (lo_ok and hi_ok):
        return out  # edge: the optimum is not bracketed, keep the grid point (flagged by the caller)
    if estimator == "spline":
        idx = np.flatnonzero(finite)
        run = idx[(idx >= i - 3) & (idx <= i + 3)]
        xs, ys = x[run], loss[run]
        f = Akima1DInterpolator(xs, ys) if len(xs) >= 3 else None
        grid = np.linspace(x[i - 1], x[i + 1], 401)
        vals = f(grid) if f is not None else np.interp(grid, xs, ys)
        j = int(np.nanargmin(vals))
        return {**out, "lr_opt": float(10 ** grid[j]), "loss_opt": float(vals[j])}
    # parabola: through the best point and its finite neighbours. A point two steps out joins (at half
    # weight, weighted LS) only when it is as near the minimum as a neighbour — a flat bottom — so
    # an asymmetric curve (plateau on one side, blow-up on the other) does not drag the vertex.
    near = min(loss[i - 1], loss[i + 1]) - loss[i]
    sel = [j for j in range(i - 2, i + 3)
           if 0 <= j < len(x) and finite[j] and (abs(j - i) <= 1 or loss[j] - loss[i] <= near)]
    w = np.array([1.0 if abs(j - i) <= 1 else 0.5 for j in sel])
    with np.errstate(over="ignore", invalid="ignore"):  # absurd losses (1e300) overflow: checked below
        a, b, c = quad_fit(x[sel], loss[sel], w)
        if not a > 0:
            return out
        xv = float(np.clip(-b / (2 * a), x[i - 1], x[i + 1]))  # vertex kept inside the bracket
        loss_opt = float(a * xv**2 + b * xv + c)
    if not np.isfinite(loss_opt):
        return out  # the parabola cannot be evaluated: keep the grid point
    return {**out, "lr_opt": float(10**xv), "loss_opt": loss_opt, "parabola": [a, b, c]}


def flags_for(lrs, table, noise_se):
    """Flags with reasons for one batch size (edge / flat / insufficient)."""
    mean = _seed_mean(table)
    finite = np.isfinite(mean)
    flags = {}
    if finite.sum() < 3:
        flags["insufficient"] = f"{int(finite.sum())} finite point(s); expected at least 3"
        return flags, mean
    i = _best(mean)
    spacing = float(np.median(np.diff(np.log10(lrs)))) if len(lrs) > 1 else 0.5
    if i == 0 or not finite[i - 1]:
        side = "smallest lr tried" if i == 0 else f"its lower neighbour {lrs[i - 1]:.3g} diverged"
        add = [lrs[0] / 10 ** (spacing * k) for k in (1, 2)] if i == 0 else [math.sqrt(lrs[i] * lrs[i - 1])]
        flags["edge"] = f"best lr {lrs[i]:.3g} is the {side}; add lr {', '.join(f'{v:.3g}' for v in add)} to bracket it"
    elif i == len(lrs) - 1 or not finite[i + 1]:
        side = "largest lr tried" if i == len(lrs) - 1 else f"its upper neighbour {lrs[i + 1]:.3g} diverged"
        add = [lrs[-1] * 10 ** (spacing * k) for k in (1, 2)] if i == len(lrs) - 1 else [math.sqrt(lrs[i] * lrs[i + 1])]
        flags["edge"] = f"best lr {lrs[i]:.3g} is the {side}; add lr {', '.join(f'{v:.3g}' for v in add)} to bracket it"
    spread = float(np.nanmax(mean) - np.nanmin(mean))
    if table.shape[0] >= 2:
        ok = np.isfinite(table).sum(axis=0) >= 2  # lrs where at least two seeds finished
        noise = float(np.mean(np.nanstd(table[:, ok], axis=0, ddof=1))) / math.sqrt(table.shape[0]) if ok.any() else 0.0
        source = "seed spread"
    else:
        noise, source = (noise_se or 0.0), "train_loss_std"
    tol = REL_FLAT_TOL * abs(float(np.nanmin(mean)))
    if spread < 2 * noise or spread < tol:
        flags["flat"] = (f"loss varies by {spread:.3g} across lrs, below {'2x noise ' + f'{2 * noise:.3g} ({source})' if spread < 2 * noise else f'{REL_FLAT_TOL:.0%} of the loss ({tol:.3g})'}")
    return flags, mean


def pooled_noise(sweep: Sweep):
    """Residual SD of local quadratic fits across batch sizes: the noise of one loss value."""
    ss, dof = 0.0, 0
    for b in sweep.batch_sizes:
        mean = _seed_mean(sweep.losses[b])
        x = np.log10(sweep.lrs[b])
        finite = np.isfinite(mean)
        if finite.sum() < 4:
            continue
        i = _best(mean)
        sel = [j for j in range(i - 2, i + 3) if 0 <= j < len(x) and finite[j]]
        if len(sel) < 4:
            continue
        with np.errstate(over="ignore", invalid="ignore"):  # absurd losses: not finite -> no estimate
            coef = quad_fit(x[sel], mean[sel])
            ss += float(np.sum((mean[sel] - np.polyval(coef, x[sel])) ** 2))
        dof += len(sel) - 3
    return math.sqrt(ss / dof) if dof and math.isfinite(ss) else None


# ---------------------------------------------------------------------------- fit
def ols(batch_sizes, lr_opts):
    """OLS of log(lr_opt) on log(B): beta, C, SE (n-2 dof), t-based 95% CI, R^2, residuals."""
    x, y = np.log(np.asarray(batch_sizes, float)), np.log(np.asarray(lr_opts, float))
    n = len(x)
    xm = x.mean()
    sxx = float(np.sum((x - xm) ** 2))
    beta = float(np.sum((x - xm) * (y - y.mean())) / sxx)
    intercept = float(y.mean() - beta * xm)
    resid = y - (intercept + beta * x)
    s2 = float(np.sum(resid**2) / (n - 2)) if n > 2 else math.nan
    se = math.sqrt(s2 / sxx) if n > 2 else math.nan
    t = float(stats.t.ppf(0.975, n - 2)) if n > 2 else math.nan
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else math.nan
    return {
        "beta": beta, "intercept": intercept, "C": math.exp(intercept), "se": se, "dof": n - 2, "t_975": t,
        "ci95": [beta - t * se, beta + t * se], "r2": r2, "residuals": [float(r) for r in resid],
    }


def analyse(sweep: Sweep, estimator=None, hypotheses=None, bootstrap=None, seed=None, include_edge=None) -> dict:
    """lr_opt per batch size, beta, CIs, hypotheses and verdict. Unset settings take the defaults of
    the config's analysis section (workflow/schemas/config.schema.yaml)."""
    given = dict(estimator=estimator, hypotheses=hypotheses, bootstrap=bootstrap, seed=seed, include_edge=include_edge)
    settings = {**config.defaults()["analysis"], **{k: v for k, v in given.items() if v is not None}}
    estimator, hypotheses, bootstrap, seed, include_edge = (settings[k] for k in given)
    per_b = [_per_batch(sweep, b, estimator, include_edge) for b in sweep.batch_sizes]
    included = [r for r in per_b if r["included"]]
    noise_pooled = pooled_noise(sweep)
    sigma = noise_pooled if noise_pooled is not None else np.nanmedian([v for v in sweep.noise.values() if v] or [0.0])
    multi = len(sweep.seeds) >= 2
    boot_beta = _bootstrap(sweep, included, estimator, bootstrap if included else 0, seed, sigma)
    result = {
        "estimator": estimator, "input_format": sweep.fmt, "seeds": sweep.seeds, "per_batch": per_b,
        "n_used": len(included), "included_batch_sizes": [r["batch_size"] for r in included],
        "excluded": [{"batch_size": r["batch_size"], "reasons": r["flags"] or {"no_optimum": "not located"}}
                     for r in per_b if not r["included"]],
        "noise_sigma": None if sigma is None or not np.isfinite(sigma) else float(sigma),
        "bootstrap": {"n": bootstrap, "seed": seed, "method": "seed resampling" if multi else "parametric (losses + estimated noise)"},
        "beta": None, "C": None, "se": None, "ci95_t": None, "ci95_bootstrap": None, "r2": None,
        "hypotheses": [], "non_monotonic": None, "boot_betas": [float(b) for b in boot_beta],
    }
    if len(included) < 3:
        result["verdict"] = (f"no beta: only {len(included)} batch size(s) have a located, bracketed, non-flat optimum "
                             f"(need at least 3). " + _exclusion_text(result))
        return result
    fit = ols([r["batch_size"] for r in included], [r["lr_opt"] for r in included])
    result.update(beta=fit["beta"], C=fit["C"], se=fit["se"], dof=fit["dof"], ci95_t=fit["ci95"], r2=fit["r2"],
                  residuals=fit["residuals"], t_975=fit["t_975"])
    if len(boot_beta) >= 20:
        result["ci95_bootstrap"] = [float(np.quantile(boot_beta, 0.025)), float(np.quantile(boot_beta, 0.975))]
    lo, hi = fit["ci95"]
    for h in hypotheses:
        result["hypotheses"].append({
            "beta": h, "name": HYPOTHESIS_NAMES.get(round(h, 3), f"beta={h}"), "in_ci95_t": bool(lo <= h <= hi),
            "in_ci95_bootstrap": None if result["ci95_bootstrap"] is None
            else bool(result["ci95_bootstrap"][0] <= h <= result["ci95_bootstrap"][1]),
            "z": (fit["beta"] - h) / fit["se"] if fit["se"] > 0 else None,
        })
    result["non_monotonic"] = _non_monotonic(included)
    result["verdict"] = _verdict(result, hypotheses, len(sweep.seeds))
    return result


def _per_batch(sweep: Sweep, b, estimator, include_edge) -> dict:
    """One batch size: flags, seed-mean losses, lr_opt where it can be located, included or not."""
    lrs, table = sweep.lrs[b], sweep.losses[b]
    flags, mean = flags_for(lrs, table, sweep.noise.get(b))
    row = {"batch_size": b, "lr_opt": None, "loss_at_opt": None, "lr_opt_ci95": None, "flags": flags,
           "lrs": lrs.tolist(), "mean_loss": [None if not np.isfinite(v) else float(v) for v in mean],
           "n_seeds": int(table.shape[0]), "diverged_lrs": [float(l) for l, v in zip(lrs, mean) if not np.isfinite(v)]}
    if "insufficient" not in flags:
        loc = locate(lrs, mean, estimator)
        row.update(lr_opt=loc["lr_opt"], loss_at_opt=loc["loss_opt"], grid_best_lr=float(lrs[loc["i_best"]]),
                   parabola=loc["parabola"])
    row["included"] = bool(row["lr_opt"] is not None and "flat" not in flags and ("edge" not in flags or include_edge))
    return row


def _bootstrap(sweep: Sweep, included, estimator, n, seed, sigma) -> list:
    """Resample seeds when there are >= 2, else perturb losses with the estimated noise `sigma`.
    Sets each included row's lr_opt_ci95; returns the bootstrap betas."""
    rng = np.random.default_rng(seed)
    multi = len(sweep.seeds) >= 2
    boot_lr = {r["batch_size"]: [] for r in included}
    boot_beta = []
    for _ in range(n):
        lr_rep = []
        for r in included:
            table = sweep.losses[r["batch_size"]]
            if multi:
                table = table[rng.integers(0, table.shape[0], table.shape[0])]
                mean = _seed_mean(table)
            else:
                mean = _seed_mean(table) + rng.normal(0, sigma or 0.0, table.shape[1])
            if not np.isfinite(mean).any():
                lr_rep.append(np.nan)
                continue
            lr_rep.append(locate(sweep.lrs[r["batch_size"]], mean, estimator)["lr_opt"])
        for r, v in zip(included, lr_rep):
            boot_lr[r["batch_size"]].append(v)
        if len(included) >= 3 and np.all(np.isfinite(lr_rep)):
            boot_beta.append(ols([r["batch_size"] for r in included], lr_rep)["beta"])
    for r in included:
        vals = np.array(boot_lr[r["batch_size"]])
        vals = vals[np.isfinite(vals)]
        if len(vals) >= 10:
            r["lr_opt_ci95"] = [float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))]
    return boot_beta


def _exclusion_text(result):
    if not result["excluded"]:
        return "No batch size excluded."
    parts = [f"B={e['batch_size']} ({', '.join(e['reasons'])})" for e in result["excluded"]]
    return "Excluded: " + "; ".join(parts) + "."


def _non_monotonic(included):
    drops = []
    for a, b in zip(included, included[1:]):
        if b["lr_opt"] < a["lr_opt"]:
            ca, cb = a.get("lr_opt_ci95"), b.get("lr_opt_ci95")
            if ca and cb and cb[1] < ca[0]:  # the drop is beyond the uncertainty of both points
                drops.append({"from_batch_size": a["batch_size"], "to_batch_size": b["batch_size"],
                              "lr_opt_from": a["lr_opt"], "lr_opt_to": b["lr_opt"]})
    return drops


def _verdict(r, hypotheses, n_seeds):
    lo, hi = r["ci95_t"]
    beta = r["beta"]
    inside = [h for h in r["hypotheses"] if h["in_ci95_t"]]
    head = f"beta = {beta:.3f} (95% CI [{lo:.3f}, {hi:.3f}], t with {r['dof']} dof, n = {r['n_used']}, R^2 = {r['r2']:.2f})"
    parts = [head]
    if len(inside) == 1:
        h = inside[0]
        parts.append(f"consistent with {h['beta']} ({h['name']}) and excludes the other hypotheses")
    elif len(inside) > 1:
        names = " and ".join(f"{h['beta']} ({h['name']})" for h in inside)
        gaps = [abs(a["beta"] - b["beta"]) for a, b in zip(inside, inside[1:])]
        need_half = min(gaps) / 2
        half = (hi - lo) / 2
        factor = (half / need_half) ** 2 if need_half > 0 else math.inf
        parts.append(
            f"NOT separated: the CI holds {names}. Separating them needs a CI half-width below {need_half:.3f} "
            f"(now {half:.3f}): about {factor:.1f}x the data, e.g. {math.ceil(factor * n_seeds)} seeds instead of "
            f"{n_seeds}, a finer lr grid near the optima, or more batch sizes")
    else:
        parts.append("inconsistent with every hypothesis tested (" + ", ".join(str(h) for h in hypotheses) + ")")
    if r["r2"] < 0.5:
        parts.append(f"poor power-law fit (R^2 = {r['r2']:.2f}): treat beta with suspicion")
    if r["non_monotonic"]:
        d = r["non_monotonic"][0]
        parts.append(f"lr_opt is non-monotonic in B (drops from B={d['from_batch_size']} to B={d['to_batch_size']} "
                     "beyond its CI): a single power law does not describe it")
    parts.append(_exclusion_text(r))
    return "; ".join(parts[:-1]) + ". " + parts[-1]


# ---------------------------------------------------------------------------- outputs
def _fmt(v, spec=".4g"):
    return "—" if v is None else format(v, spec)


def summary_table(result) -> str:
    lines = ["| B | lr_opt | 95% CI | loss at opt | used | flags |", "|---|---|---|---|---|---|"]
    for r in result["per_batch"]:
        ci = r.get("lr_opt_ci95")
        ci_s = f"[{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "—"
        flags = "; ".join(f"{k}: {v}" for k, v in r["flags"].items()) or "—"
        lines.append(f"| {r['batch_size']} | {_fmt(r['lr_opt'], '.4g')} | {ci_s} | {_fmt(r['loss_at_opt'])} | "
                     f"{'yes' if r['included'] else 'no'} | {flags} |")
    return "\n".join(lines)


def run_fit(results_csv, cfg=None, out_dir=None, metrics=()) -> dict:
    """Fit a results CSV with the config's analysis settings; write fit.json, best_per_batch.csv,
    report.md and the plots. `metrics`: the sweep's metrics.json files, validated before any output
    is written (a corrupt one is an error naming it) and drawn in training_curves.png."""
    cfg = cfg or config.defaults()
    a = cfg["analysis"]
    if a["bootstrap"] < 0:
        raise UserError(f"--bootstrap: {a['bootstrap']}; expected a non-negative integer")
    path = Path(results_csv)
    sweep = read_table(path, cfg["train"]["final_window"])
    runs = load_all(metrics)
    result = analyse(sweep, a["estimator"], a["hypotheses"], a["bootstrap"], a["seed"], a["include_edge"])
    result["input"] = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    out = Path(out_dir) if out_dir else path.parent / "analysis"
    boot = result.pop("boot_betas")
    from . import plots  # matplotlib only when writing outputs

    plots.render_all(result, boot, out, runs)
    print(f"[lrscale fit] training curves from {len(runs)} metrics files")
    atomic_write_json(out / "fit.json", result)
    best = ["batch_size,lr_opt,lr_opt_ci_low,lr_opt_ci_high,loss_at_opt,included,flags"]
    for r in result["per_batch"]:
        ci = r.get("lr_opt_ci95") or [None, None]
        best.append(",".join(["" if v is None else str(v) for v in (r["batch_size"], r["lr_opt"], ci[0], ci[1],
                                                                     r["loss_at_opt"], r["included"])]
                             + ['"' + ";".join(r["flags"]) + '"']))
    atomic_write_text(out / "best_per_batch.csv", "\n".join(best) + "\n")
    table = summary_table(result)
    report = (f"# lrscale fit: {path}\n\nEstimator: {a['estimator']}; bootstrap: {result['bootstrap']['n']} "
              f"({result['bootstrap']['method']}).\n\n{table}\n\n## Verdict\n\n{result['verdict']}\n\n"
              + "".join(f"![{p}]({p}.png)\n" for p in PLOTS))
    atomic_write_text(out / "report.md", report)
    print(table)
    print()
    print("Verdict:", result["verdict"])
    return result
