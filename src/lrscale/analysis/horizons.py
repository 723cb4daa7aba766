"""How lr_opt moves with the horizon D (issue 24.3): a summary over a sweep's per-horizon fits.

Each horizon is fitted on its own (analysis/D{h}/fit.json: its answer, its per-B optima). From those:
  per_horizon  each horizon's β with its CI (its own answer), or why it has none
  joint        ln lr_opt = c + β·ln B − γ·ln D over every horizon's included per-B optima: WLS, each
               optimum weighted by its across-B SE, the residual scale estimated (t, n − 3 dof)
  change       the joint model plus δ·(ln B − mean)(ln D − mean): β changes with D beyond its CI when
               δ's CI excludes 0 (β at ln D is β + δ·(ln D − mean))
The sentence says no more than those CIs, and names the assumption: one power law in B and one in D.
bench/horizon_accuracy.py checks the CIs' coverage, on truths inside and outside that model.
"""

import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

from ..errors import UserError
from ..fileio import atomic_write_json, atomic_write_text, read_text
from .groups import optima_of, two_stage
from .names import MCCANDLISH
from .verdict import answered_beta

MIN_DOF = 2  # a scale estimated from fewer residual dof makes a t-CI little more than a guess


def optima(fits: dict) -> list[tuple]:
    """(B, D, ln lr_opt, SE of ln lr_opt) of every horizon's included per-B optima."""
    return [(b, d, y, se) for d, fit in fits.items() for b, y, se in optima_of(fit)]


def wls(columns: list, y, se) -> dict:
    """Weighted LS of y on [1, *columns] with the residual scale estimated: coefficients, SEs, t CIs."""
    x = np.column_stack([np.ones(len(y)), *columns])
    w = 1 / np.square(se)
    xtw = x.T * w
    cov = np.linalg.inv(xtw @ x)
    coef = cov @ xtw @ np.asarray(y)
    resid = np.asarray(y) - x @ coef
    dof = len(y) - x.shape[1]
    scale2 = float(np.sum(w * resid**2) / dof)
    se_coef = np.sqrt(np.diag(cov) * scale2)
    t = float(stats.t.ppf(0.975, dof))
    return {"coef": coef.tolist(), "se": se_coef.tolist(), "ci95": [[c - t * s, c + t * s] for c, s in zip(coef, se_coef)],
            "dof": dof, "scale": math.sqrt(scale2), "t_975": t}


def joint(rows: list) -> dict:
    """ln lr_opt = c + β ln B − γ ln D in two stages (groups.two_stage: β within horizons, then the
    horizons' levels against ln D, t on horizons − 2 dof: a horizon's optima share its errors), and
    the interaction δ that says whether β moves with D."""
    horizons, batches = {r[1] for r in rows}, {r[0] for r in rows}
    if len(horizons) < 2 or len(batches) < 2 or len(rows) - 4 < MIN_DOF:
        return {"beta": None, "gamma": None, "reason": f"{len(rows)} optima at {len(horizons)} horizon(s) and "
                f"{len(batches)} batch size(s); need 2+ of each and {4 + MIN_DOF}+ optima"}
    ln_b, ln_d = np.log([r[0] for r in rows]), np.log([r[1] for r in rows])
    y, se = [r[2] for r in rows], [r[3] for r in rows]
    try:
        inter = wls([ln_b, -ln_d, (ln_b - ln_b.mean()) * (ln_d - ln_d.mean())], y, se)
    except np.linalg.LinAlgError:
        return {"beta": None, "gamma": None, "reason": "the optima's batch sizes and horizons move together "
                "(collinear): B and D cannot be told apart"}
    by_horizon = {}
    for b, d, value, err in rows:
        by_horizon.setdefault(d, []).append((b, value, err))
    staged = two_stage(by_horizon, {"D": {d: d for d in by_horizon}})
    if staged["beta"] is None or "D" not in staged["slopes"]:
        return {"beta": None, "gamma": None, "reason": staged.get("reason") or staged.get("slopes_reason")}
    slope = staged["slopes"]["D"]
    delta_ci = inter["ci95"][3]
    return {"beta": staged["beta"], "beta_ci95": staged["beta_ci95"], "gamma": -slope["value"],
            "gamma_ci95": None if slope["ci95"] is None else [-slope["ci95"][1], -slope["ci95"][0]],
            "gamma_dof": slope["dof"], "gamma_reason": staged.get("slopes_reason"), "c": staged["c"],
            "n": len(rows), "dof": staged["beta_dof"], "scale": staged["within_scale"],
            "between_scale": staged["between_scale"], "delta": inter["coef"][3], "delta_ci95": delta_ci,
            "ln_d_mean": float(ln_d.mean()), "beta_changes": bool(delta_ci[0] > 0 or delta_ci[1] < 0)}


def summarize(fits: dict) -> dict:
    """The horizons' summary: per horizon (its own answer), the joint fit and the sentence."""
    per = []
    for d, f in sorted(fits.items()):
        beta, ci = answered_beta(f) or (None, None)  # "not decided": no β
        per.append({"horizon": d, "beta": beta, "ci95": ci, "estimator": f["answer"]["estimator"],
                    "verdict": f["verdict"].splitlines()[0], "n_used": f["n_used"], **proxies(f)})
    model = joint(optima(fits))
    return {"horizons": sorted(fits), "per_horizon": per, "joint": model, "sentence": sentence(per, model)}


def proxies(fit: dict) -> dict:
    """A horizon's two proxies for the critical batch size, read beside B_crit: B_simple (the gradients'
    noise scale, median over batch sizes) and B_noise (McCandlish's form fitted to lr_opt(B)), or None."""
    mc = (fit.get("forms") or {}).get(MCCANDLISH) or {}
    return {"b_simple_median": (fit.get("gradient_noise") or {}).get("b_simple_median"),
            "b_noise": mc.get("b_noise"), "b_noise_ci95": mc.get("b_noise_ci95")}


UNBOUNDED_WIDTH = 20.0  # a CI on an exponent this wide says nothing: it reads "unbounded", not ±4e7


def _ci(ci) -> str:
    if ci is None:
        return "(no CI)"
    return "(unbounded CI)" if ci[1] - ci[0] > UNBOUNDED_WIDTH else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def sentence(per: list, model: dict) -> str:
    """What the horizons say, no more than their CIs allow; the caveat that undercuts it first."""
    missing = [f"D = {p['horizon']:,}" for p in per if p["beta"] is None]
    first = f"{', '.join(missing)}: no β of its own (its report says why). " if missing else ""
    if model["beta"] is None:
        return f"{first}No joint fit across horizons: {model['reason']}."
    if any(p["beta"] is None and p["n_used"] for p in per):  # a "not decided" verdict, or too few B
        first = first.removesuffix(". ") + "; the fit across horizons still reads every horizon's per-B optima. "
    assumption = "Assumes lr_opt = C·B^β·D^−γ with one β for every horizon"
    # measured (bench/horizon_accuracy.py): γ rests on how whole horizons scatter, so few horizons give
    # few dof; one-stage CIs (every optimum independent) missed an NQM-SGD truth's γ in 99% of sweeps
    if model["gamma_ci95"] is not None:
        first += (f"γ rests on {model['gamma_dof'] + 2} horizons ({model['gamma_dof']} dof): its CI is wide and "
                  "conservative (it held the true γ in every benchmark sweep, also on an NQM-SGD truth where γ comes out "
                  "8–9% low, with half-widths of 0.19–0.53 at 3 horizons; bench/README.md \"Horizons\"); more "
                  "horizons narrow it. ")
    if model["beta_changes"]:
        return first + (f"β changes with the horizon beyond its CI (interaction δ = {model['delta']:.3f}, CI "
                f"{_ci(model['delta_ci95'])}): read each horizon's β, not the joint one. {assumption}, which these "
                f"data reject; the joint γ = {model['gamma']:.3f} {_ci(model['gamma_ci95'])} is an average.")
    if model["gamma_ci95"] is None:
        first += f"γ has no CI: {model['gamma_reason']}. "
        moves = "how lr_opt moves with the horizon is not measured"
    else:
        lo, hi = model["gamma_ci95"]
        moves = ("lr_opt falls with the horizon as D^−γ" if lo > 0 else "lr_opt rises with the horizon (γ < 0)"
                 if hi < 0 else "lr_opt does not move with the horizon beyond its CI")
    return first + (f"Across {len(per)} horizons: β = {model['beta']:.3f} {_ci(model['beta_ci95'])}; {moves}, "
                    f"γ = {model['gamma']:.3f} {_ci(model['gamma_ci95'])}; no change of β with D beyond its CI "
                    f"(δ {_ci(model['delta_ci95'])}). {assumption} ({model['n']} per-B optima; γ from how whole horizons scatter, "
                    f"{model['gamma_dof']} dof).")


def _read_fit(path) -> tuple:
    """(horizon, fit.json) of one horizon's fit; a file that is not one is a one-line error."""
    try:
        fit = json.loads(read_text(path, "fit.json"))
        horizon = fit["input"]["horizon"]
        fit["per_batch"], fit["answer"], fit["verdict"]  # noqa: B018  (the keys the summary reads)
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}: not an lrscale fit.json; expected `lrscale fit --horizon`'s output") from None
    if horizon is None:
        raise UserError(f"{path}: key 'input.horizon': null; expected the fit of one horizon (lrscale fit --horizon)")
    return horizon, fit


def markdown(summary: dict) -> str:
    rows = [f"| {p['horizon']:,} | " + (f"{p['beta']:.3f} | {_ci(p['ci95'])}" if p["beta"] is not None else "— | —")
            + f" | {p['estimator']} | {p['n_used']} |" for p in summary["per_horizon"]]
    m = summary["joint"]
    joint = (f"Joint fit, ln lr_opt = c + β·ln B − γ·ln D over {m['n']} per-B optima, in two stages: β within horizons "
             f"(one level per horizon, WLS on the optima's across-B SEs, residual scale {m['scale']:.2f}, t with {m['dof']} "
             f"dof): β = {m['beta']:.3f} {_ci(m['beta_ci95'])}; then the horizons' levels against ln D (GLS, the scale "
             f"estimated between horizons, t with {m['gamma_dof']} dof): γ = {m['gamma']:.3f} {_ci(m['gamma_ci95'])}; "
             f"with an interaction δ·(ln B − mean)(ln D − mean): δ = {m['delta']:.3f} {_ci(m['delta_ci95'])}."
             if m["beta"] is not None else m["reason"] + ".")
    return "\n".join(["# lr_opt across horizons", "", summary["sentence"], "",
                      "| horizon D | β (its own fit) | 95% CI | estimator | batch sizes used |", "|---|---|---|---|---|",
                      *rows, "", joint, "", *_critical_lines(summary.get("critical_batch")),
                      *(_proxy_lines(summary["per_horizon"]) if summary.get("critical_batch") else []),
                      "Each horizon's own fit, report and plots: analysis/D<horizon>/.", ""])


def _critical_lines(crit) -> list:
    """The critical batch size's table (McCandlish et al. 2018's steps–samples tradeoff)."""
    if crit is None:
        return []
    head = ["## Critical batch size (steps–samples tradeoff)", ""]
    if not crit["targets"]:
        return [*head, f"Not measured: {crit['reason']}.", ""]
    rows = []
    for t in crit["targets"]:
        if t["b_crit"] is None:
            rows.append(f"| {t['target_loss']:.4g} | — | {t['reason']} |")
            continue
        lo, hi = t["ci95"]
        ci = f"[{'unbounded' if lo is None else f'{lo:.3g}'}, {'unbounded' if hi is None else f'{hi:.3g}'}]"
        rows.append(f"| {t['target_loss']:.4g} | {t['b_crit']:.3g} {ci} | S_min {t['s_min']:.3g} steps, "
                    f"{t['n_batch_sizes']} batch sizes, {t['dof']} dof |")
    return [*head, f"B_crit: the batch size at which the steps to reach a loss double over S_min ({crit['method']}). "
            "Its CI covers 0.91–0.98 on McCandlish's and softer knees, but 0.40 on a sharper knee at B_crit = 128 "
            "(bench/b_crit_accuracy.py); the horizons' spacing limits how well S is located. b_crit.png draws the "
            "steps against B.", "", "| target loss | B_crit (95% CI) | from |", "|---|---|---|", *rows, ""]


def _proxy_lines(per: list) -> list:
    """B_simple and B_noise at each horizon, the proxies B_crit is read beside."""
    def bn(p):
        if p["b_noise"] is None:
            return "—"
        lo, hi = p["b_noise_ci95"] or (None, None)
        return f"{p['b_noise']:.3g} [{'open' if lo is None else f'{lo:.3g}'}, {'open' if hi is None else f'{hi:.3g}'}]"

    rows = [f"| {p['horizon']:,} | " + ("—" if p["b_simple_median"] is None else f"{p['b_simple_median']:.3g}")
            + f" | {bn(p)} |" for p in per]
    return ["Its proxies at each horizon: B_simple, the gradients' noise scale (median over batch sizes, at each lr_opt, "
            "end of training), and B_noise, McCandlish's form fitted to lr_opt(B) (95% CI). Both are estimated "
            "differently and need not agree with B_crit (README, \"On a real task: label noise\").", "",
            "| horizon D | B_simple (median) | B_noise (McCandlish) |", "|---|---|---|", *rows, ""]


def run_summary(fit_paths, out_dir, results_csv=None) -> dict:
    """horizons.json, horizons.md, lr_opt_by_horizon.png (one colour per horizon) and b_crit.png in
    out_dir; with the sweep's results.csv, the critical batch size from the steps–samples tradeoff too."""
    from . import plots  # matplotlib: only when writing

    pairs = [_read_fit(p) for p in fit_paths]
    fits = dict(pairs)
    if len(fits) < len(pairs):
        raise UserError(f"{', '.join(map(str, fit_paths))}: two fits of the same horizon; expected one per horizon")
    summary = summarize(fits)
    if results_csv is not None:
        summary["critical_batch"] = critical_batch(results_csv)
    out_dir = Path(out_dir)
    plots.lr_opt_by_horizon(fits, summary, out_dir / "lr_opt_by_horizon.png")
    plots.b_crit(summary, out_dir / "b_crit.png")
    atomic_write_text(out_dir / "horizons.md", markdown(summary))
    atomic_write_json(out_dir / "horizons.json", summary)
    print(f"[lrscale horizons] {summary['sentence']}")
    return summary


TARGET_QUANTILES = (0.25, 0.5, 0.75)  # loss targets spread over the range every batch size crosses


def steps_and_best(results_csv) -> dict:
    """{B: (steps at each horizon, best seed-mean final val loss over lrs at each)} from results.csv."""
    import pandas as pd

    columns = ["batch_size", "lr", "final_val_loss", "num_steps", "budget"]
    try:
        runs = pd.read_csv(results_csv)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise UserError(f"{results_csv}: not a readable results CSV ({type(e).__name__}); expected lrscale's results.csv") from None
    missing = [c for c in columns if c not in runs.columns]
    if missing:
        raise UserError(f"{results_csv}: missing column(s) {missing}; expected lrscale's results.csv with several horizons")
    # a seed that diverged makes its lr's mean NaN (not the mean of the survivors: that would flatter the lr)
    means = runs.groupby(["batch_size", "budget", "lr"]).agg(loss=("final_val_loss", lambda v: v.mean(skipna=False)),
                                                             steps=("num_steps", "max"))
    per = means.groupby(level=["batch_size", "budget"]).agg(loss=("loss", "min"), steps=("steps", "max"))
    return {int(b): (g["steps"].tolist(), g["loss"].tolist()) for b, g in per.groupby(level="batch_size")}


def finished_batches(results_csv) -> dict:
    """steps_and_best of the batch sizes with a finite best loss at every horizon (the ones B_crit reads)."""
    return {b: (s, loss) for b, (s, loss) in steps_and_best(results_csv).items() if np.all(np.isfinite(loss))}


def critical_batch(results_csv) -> dict:
    """B_crit from the steps–samples tradeoff (analysis.critical_batch) at a few loss targets: each
    between the worst batch size's best loss at the longest horizon and the best one's at the
    shortest, so that every batch size crosses it between two horizons."""
    from .critical_batch import fit_b_crit, steps_to_target

    finished = finished_batches(results_csv)
    if len(finished) < 3:
        return {"targets": [], "reason": f"{len(finished)} batch sizes have a finite best loss at every horizon (need 3)"}
    low = max(loss[-1] for _, loss in finished.values())
    high = min(loss[0] for _, loss in finished.values())
    if not low < high:
        return {"targets": [], "reason": "no loss is crossed by every batch size between two horizons (the shortest "
                                         "horizon of one B is already below the longest of another)"}
    out = []
    for q in TARGET_QUANTILES:
        target = float(low + q * (high - low))
        bs = sorted(finished)
        steps = [steps_to_target(*finished[b], target) for b in bs]
        out.append({"target_loss": target, **fit_b_crit(bs, steps), "batch_sizes": bs, "steps": steps})
    return {"targets": out, "method": "S(B) = S_min·(1 + (B_crit/B)^γ) on the steps each B's best run needs to "
                                      "reach the target, interpolated in log steps between horizons"}
