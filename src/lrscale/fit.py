"""lr_opt per batch size, how it depends on B, and a verdict that never claims more than the data.

Every past version of this study was fooled by its analysis: argmin on a coarse grid, optima at the
grid's edge fitted as if real, flat landscapes fitted anyway, 2xSE called a 95% CI on 4 points, a
power law fitted to a curve that bends. Here, in order:
  sweep_table  the results CSV (three formats) -> a loss table per batch size
  optima       lr_opt per B with a calibrated SE, and flags with reasons (edge, clipped, flat, ...)
  shared_shape the optima again, from one loss shape fitted to every B at once (when it fits)
  forms        power law, McCandlish and surge fitted to lr_opt(B) by WLS and compared
  verdict      the sentence, from the intervals only
  report       fit.json, best_per_batch.csv, report.md, plots
`analyse` ties them together; `run_fit` is the CLI's entry point.
"""

import hashlib
import math
from pathlib import Path

import numpy as np

from . import config, forms, loss_noise, optima, shared_shape
from .aggregate import last_probe, load_all
from .optima import locate, quad_fit  # noqa: F401  (the fit's public API, used by tests and benches)
from .sweep_table import Sweep, read_table, set_grid  # noqa: F401
from .verdict import HYPOTHESIS_NAMES, noise_sentence, verdict

LN10 = math.log(10)


def ols(batch_sizes, lr_opts):
    """Unweighted OLS of ln lr_opt on ln B with a t-based CI (n-2 dof): the reference fit."""
    y = np.log(np.asarray(lr_opts, float))
    line = forms.wls_line(np.log(np.asarray(batch_sizes, float)), y, np.ones(len(y)))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {**line, "C": math.exp(line["intercept"]),
            "r2": 1 - float(np.sum(np.square(line["residuals"]))) / ss_tot if ss_tot > 0 else math.nan}


def _settings(**given) -> dict:
    """The analysis section: schema defaults, overridden by the settings given (not None)."""
    return {**config.defaults()["analysis"], **{k: v for k, v in given.items() if v is not None}}


def _locate_row(sweep: Sweep, b, s: dict, noise: dict):
    """One batch size: (row with lr_opt, locate's result or None, seed-mean losses)."""
    lrs, table, n = sweep.lrs[b], sweep.losses[b], sweep.counts(b)
    mean = optima.seed_mean(table, sweep.ran_mask(b))
    sd = _point_sd(sweep, b, noise)
    row = {"batch_size": b, "lr_opt": None, "loss_at_opt": None, "lr_opt_ci95": None, "lr_opt_se_log10": None,
           "flags": {}, "lrs": lrs.tolist(), "mean_loss": [None if not np.isfinite(v) else float(v) for v in mean],
           "n_seeds": int(n.max()), "runs_per_lr": n.tolist(), "diverged_lrs": [float(l) for l, v in zip(lrs, mean) if not np.isfinite(v)]}
    if np.isfinite(mean).sum() < 3:
        return row, None, mean
    loc = locate(lrs, mean, s["estimator"], sd, n, sweep.grid.get(b))
    row.update(lr_opt=loc["lr_opt"], loss_at_opt=loc["loss_opt"], grid_best_lr=float(lrs[loc["i_best"]]),
               parabola=loc["parabola"], curvature_t=loc["curvature_t"])
    return row, loc, mean


def _point_sd(sweep: Sweep, b, noise: dict):
    """SD of each seed-mean loss of batch size b (its σ over the runs behind it); None without σ."""
    sigma = _noise_at(noise, b)["sigma"]
    return None if sigma is None else sigma / np.sqrt(np.maximum(sweep.counts(b), 1))


def _noise_at(noise: dict, b) -> dict:
    """The noise of batch size b: its own σ and dof when σ is modelled per B, else the pooled ones."""
    model = noise["model"]
    return {**noise, "sigma": model["sigma"].get(b, noise["sigma"]), "dof": model["dof"].get(b, noise["dof"])}


def _finish_row(row, loc, mean, shape: dict, joint: dict, sweep: Sweep, s: dict, noise: dict) -> dict:
    """The shared shape's optimum, or the shift-corrected vertex; SEs (noise and shape bias in
    quadrature: the whole bias for lr_opt's CI, its B-to-B part for fits across B), CI, flags with
    reasons, included or not."""
    b, lrs = row["batch_size"], sweep.lrs[row["batch_size"]]
    own = _noise_at(noise, b)
    if b in joint.get("x", {}):  # no floor: a misfit of the shared shape shows in its χ², which scales its SEs
        row.update(lr_opt_vertex=row["lr_opt"], lr_opt=float(10 ** joint["x"][b]), loss_at_opt=joint["level"][b],
                   local_fit=joint["coef"][b])
        se_noise, total, across_b, dof = joint["se"][b], 0.0, 0.0, joint["se_dof"]
    else:
        if shape["shift"] is not None and loc is not None and loc["parabola"] and not loc["clipped"]:
            lo, hi = np.log10(loc["bracket"])
            x = float(np.clip(loc["x_vertex"] - shape["shift"], lo, hi))
            a, bb, c = loc["parabola"]
            row.update(lr_opt_vertex=row["lr_opt"], lr_opt=float(10**x), loss_at_opt=float(a * x * x + bb * x + c))
        se_noise, total, across_b, dof = _vertex_se(loc, noise), shape["total"], shape["across_b"], own["dof"]
    if se_noise is not None:
        row["lr_opt_se_log10"] = optima.total_se(se_noise, total)
        row["lr_opt_se_across_b_log10"] = optima.total_se(se_noise, across_b)
        row["lr_opt_ci95"] = optima.ci95(row["lr_opt"], row["lr_opt_se_log10"], dof)
    row["flags"] = optima.flags_for(lrs, mean, loc, row["lr_opt_se_log10"], own, sweep.clipped.get(b))
    row["noise_sigma"], row["noise_sigma_dof"] = own["sigma"], own["dof"]
    blocking = set(row["flags"]) - {"grad_clipped"} - ({"edge", "clipped"} if s["include_edge"] else set())
    row["included"] = bool(row["lr_opt"] is not None and row["lr_opt_se_log10"] is not None and not blocking)
    return row


def _identifiable(loc) -> bool:
    """A located vertex inside its bracket, curved beyond the noise: a flat column has no shape."""
    curved = (loc or {}).get("curvature_t") or 0
    return bool(loc and loc["shape_bias"] and not loc["clipped"] and curved >= optima.MIN_CURVATURE_T)


def _vertex_se(loc, noise):
    """SE of log10 lr_opt from noise for a per-B vertex: the delta method's, or one grid step for an
    unbracketed optimum (it lies beyond the edge); None without a noise estimate."""
    if loc is not None and loc["se_log10"] is not None:
        return loc["se_log10"]
    return loc["step"] if loc is not None and noise["sigma"] is not None else None


def _per_batch(sweep: Sweep, s: dict, noise: dict):
    """Every batch size's row, the sweep's shape bias in decades (`_shape`) and the shared-shape fit
    (`_joint`; its optima replace the per-B vertices when it is used)."""
    located = [_locate_row(sweep, b, s, noise) for b in sweep.batch_sizes]
    step = float(np.median([optima.spacing(sweep.grid.get(b, sweep.lrs[b])) for b in sweep.batch_sizes]))
    identifiable = [(row, loc, mean) for row, loc, mean in located if _identifiable(loc)]
    joint = _joint(identifiable, sweep, s, noise)
    shape = _shape([loc["shape_bias"] for _, loc, _ in identifiable],
                   [loc["phase_jitter"] for _, loc, _ in identifiable], step, s["estimator"])
    if joint["used"]:  # the per-B treatment stays for the batch sizes outside the shared shape
        shape["model"] = "shared_shape"
    rows = [_finish_row(row, loc, mean, shape, joint, sweep, s, noise) for row, loc, mean in located]
    return rows, shape, joint


def _joint(identifiable, sweep: Sweep, s: dict, noise: dict) -> dict:
    """The shared-shape fit over the identifiable batch sizes' windows (parabola estimator, a noise
    estimate), each optimum kept inside its B's bracket."""
    if s["estimator"] != "parabola":
        return {"used": False, "reason": f"the {s['estimator']} estimator"}
    if noise["source"] != "seed spread":  # σ from the windows' own residuals: the tests would be circular
        return {"used": False, "reason": "one seed: no noise estimate independent of the curves' shapes"}
    windows, brackets = {}, {}
    for row, loc, mean in identifiable:
        b, w = row["batch_size"], loc["window"]
        sd = _point_sd(sweep, b, noise)
        windows[b], brackets[b] = (np.log10(sweep.lrs[b])[w], mean[w], sd[w]), np.log10(loc["bracket"])
    return shared_shape.fit(windows, brackets, noise["dof"])


def _shape(biases, jitters, step, estimator) -> dict:
    """The quadratic vertex's shape bias: with the parabola and enough batch sizes, a common `shift`
    subtracted from every vertex; what is left varies with each B's grid phase (`across_b`: the
    median phase jitter, with the least floor in quadrature); `total` adds the shift's SE. Otherwise
    no shift and `shape_floor`'s (total, across_b)."""
    shift = optima.shape_shift(biases) if estimator == "parabola" else None
    if shift is None:
        total, across = optima.shape_floor(biases, step)
        return {"total": total, "across_b": across, "shift": None, "shift_se": None, "phase_jitter": None,
                "model": "floor"}
    jitter = [j for j in jitters if j is not None]
    jitter = float(np.median(jitter)) if jitter else 0.0
    across = math.hypot(jitter, optima.FLOOR_STEPS * step)
    return {"total": math.hypot(shift[1], across), "across_b": across, "shift": shift[0], "shift_se": shift[1],
            "phase_jitter": jitter, "model": "shift"}


def _noise_summary(model: dict) -> dict:
    """fit.json's account of σ(B): per B (string keys, as JSON has them), the test and the trend."""
    per_b = lambda d: {str(b): v for b, v in d.items()}  # noqa: E731
    return {k: per_b(v) if isinstance(v, dict) else v for k, v in model.items()}


def _joint_summary(joint: dict) -> dict:
    """fit.json's account of the shared-shape fit (no per-point arrays)."""
    if not joint["used"]:
        return joint
    return {"used": True, "batch_sizes": list(joint["x"]), "k_per_decade": joint["k"],
            "q_per_decade2": joint["q"], "chi2": joint["chi2"], "dof": joint["dof"], "p_value": joint["p_value"],
            "p_shared": joint["p_shared"]}


def _bootstrap(sweep: Sweep, included, s: dict, noise: dict, shape: dict, joint: dict) -> list:
    """β from sweeps redrawn with the noise (seed means ± σ_B/√seeds, plus the B-to-B shape
    bias on each lr_opt), refitted with the same weights: calibrated with 1 or 2 seeds alike. The
    shared shape's optima are redrawn through its linearisation (one draw of the point errors for
    every B: the shared k and q correlate them); the other optima are located again."""
    rng = np.random.default_rng(s["seed"])
    sigma, dof = noise["sigma"], noise["dof"]
    across_b = shape["across_b"]
    b = [r["batch_size"] for r in included]
    var = [(LN10 * r["lr_opt_se_across_b_log10"]) ** 2 for r in included]
    draw = joint.get("draw", {})
    width = len(next(iter(draw.values()))) if draw else 0
    betas = []
    for _ in range(s["bootstrap"] if len(included) >= 3 and sigma else 0):
        # σ itself is an estimate: draw it from its sampling distribution (χ² with the noise dof)
        sigma_k = sigma * math.sqrt(dof / rng.chisquare(dof)) if math.isfinite(dof) else sigma
        z = rng.normal(0, sigma_k / sigma, width)
        y = []
        for r in included:
            if r["batch_size"] in draw:
                y.append(LN10 * (math.log10(r["lr_opt"]) + float(draw[r["batch_size"]] @ z)))
                continue
            lrs, table, n = sweep.lrs[r["batch_size"]], sweep.losses[r["batch_size"]], sweep.counts(r["batch_size"])
            mean = optima.seed_mean(table, sweep.ran_mask(r["batch_size"]))
            mean = mean + rng.normal(0, 1, len(mean)) * sigma_k / sigma * _point_sd(sweep, r["batch_size"], noise)
            lr_opt = locate(lrs, mean, s["estimator"], runs=n, grid_lrs=sweep.grid.get(r["batch_size"]))["lr_opt"]
            y.append(LN10 * (math.log10(lr_opt) + rng.normal(0, across_b)))
        betas.append(forms.wls_line(np.log(b), y, var)["beta"])
    return betas


def _non_monotonic(included):
    drops = []
    for a, b in zip(included, included[1:]):
        if b["lr_opt"] < a["lr_opt"]:
            ca, cb = a.get("lr_opt_ci95"), b.get("lr_opt_ci95")
            if ca and cb and cb[1] < ca[0]:  # the drop is beyond the uncertainty of both points
                drops.append({"from_batch_size": a["batch_size"], "to_batch_size": b["batch_size"],
                              "lr_opt_from": a["lr_opt"], "lr_opt_to": b["lr_opt"]})
    return drops


def _noise(sweep: Sweep) -> dict:
    """σ pooled over the sweep (sigma, dof, source) and `model`: σ per batch size (lrscale.loss_noise)."""
    known = [v for v in sweep.noise.values() if v]
    fallback = float(np.median(known)) if known else None
    sigma, dof, source = optima.pooled_sigma(sweep.lrs, sweep.losses, fallback, sweep.ran, sweep.grid)
    if sigma is not None and source != "seed spread" and fallback is not None and fallback > sigma:
        # one seed: the within-run noise is a lower bound; when it is the larger, it is the estimate used
        sigma, dof, source = fallback, math.inf, "train_loss_std (above the local cubic residuals)"
    spread = optima.seed_spread(sweep.lrs, sweep.losses, sweep.ran, sweep.grid) if source == "seed spread" else {}
    return {"sigma": sigma, "dof": dof, "source": source,
            "model": loss_noise.model(spread, (sigma, dof, source), sweep.batch_sizes)}


def analyse(sweep: Sweep, estimator=None, hypotheses=None, bootstrap=None, seed=None, include_edge=None) -> dict:
    """lr_opt per batch size, the form of lr_opt(B), β with CIs, hypotheses and the verdict. Unset
    settings take the defaults of the config's analysis section (workflow/schemas/config.schema.yaml)."""
    s = _settings(estimator=estimator, hypotheses=hypotheses, bootstrap=bootstrap, seed=seed, include_edge=include_edge)
    noise = _noise(sweep)
    per_b, shape, joint = _per_batch(sweep, s, noise)
    included = [r for r in per_b if r["included"]]
    boot_beta = _bootstrap(sweep, included, s, noise, shape, joint)
    result = {
        "estimator": s["estimator"], "input_format": sweep.fmt, "seeds": sweep.seeds, "per_batch": per_b,
        "n_used": len(included), "included_batch_sizes": [r["batch_size"] for r in included],
        "excluded": [{"batch_size": r["batch_size"], "reasons": r["flags"] or {"no_optimum": "not located"}}
                     for r in per_b if not r["included"]],
        "noise_sigma": noise["sigma"], "noise_source": noise["source"], "noise_dof": noise["dof"],
        "noise_by_batch": _noise_summary(noise["model"]),
        "shape_bias_log10": shape, "shared_shape": _joint_summary(joint),
        "bootstrap": {"n": s["bootstrap"], "seed": s["seed"], "method": "parametric: seed means + "
                      + ("σ per batch size" if noise["model"]["per_batch"] else "pooled noise")
                      + ("; shared-shape optima through its linearisation" if joint["used"] else "")},
        "beta": None, "C": None, "se": None, "ci95_t": None, "ci95_bootstrap": None, "r2": None,
        "hypotheses": [], "non_monotonic": None, "forms": None, "preferred_form": None,
        "boot_betas": [float(b) for b in boot_beta],
    }
    if len(included) >= 3:
        _fit_forms(result, included, s["hypotheses"], boot_beta, noise["dof"])
    result["verdict"] = verdict(result, s["hypotheses"])
    return result


def _fit_forms(result, included, hypotheses, boot_beta, noise_dof) -> None:
    b = [r["batch_size"] for r in included]
    se_ln = [LN10 * r["lr_opt_se_across_b_log10"] for r in included]
    comparison = forms.compare(b, [r["lr_opt"] for r in included], se_ln, noise_dof)
    line = comparison["fits"]["power_law"].pop("line")
    y = np.log([r["lr_opt"] for r in included])
    w = 1 / np.square(se_ln)
    ss_tot = float(np.sum(w * (y - np.sum(w * y) / np.sum(w)) ** 2))
    result.update(beta=line["beta"], C=math.exp(line["intercept"]), se=line["se"], dof=line["dof"],
                  ci95_t=line["ci95"], t_975=line["t_975"], residuals=line["residuals"],
                  r2=1 - line["chi2"] / ss_tot if ss_tot > 0 else None, chi2_per_dof=line["chi2"] / line["dof"],
                  forms=comparison["fits"], preferred_form=comparison["preferred_form"],
                  preference_reason=comparison["preference_reason"])
    if len(boot_beta) >= 20:
        result["ci95_bootstrap"] = [float(np.quantile(boot_beta, 0.025)), float(np.quantile(boot_beta, 0.975))]
    lo, hi = line["ci95"]
    for h in hypotheses:
        result["hypotheses"].append({
            "beta": h, "name": HYPOTHESIS_NAMES.get(round(h, 3), f"beta={h}"), "in_ci95_t": bool(lo <= h <= hi),
            "in_ci95_bootstrap": None if result["ci95_bootstrap"] is None
            else bool(result["ci95_bootstrap"][0] <= h <= result["ci95_bootstrap"][1]),
            "z": (line["beta"] - h) / line["se"] if line["se"] > 0 else None,
        })
    result["non_monotonic"] = _non_monotonic(included)
    # under the shared shape, what seeds cannot shrink is its misfit: the χ² above its dof
    j = result["shared_shape"]
    misfit = 1 / max(1.0, j["chi2"] / j["dof"]) if j["used"] else None
    shares = [misfit if r["batch_size"] in j.get("batch_sizes", ()) else
              1 - result["shape_bias_log10"]["across_b"] ** 2 / r["lr_opt_se_across_b_log10"] ** 2 for r in included]
    result["noise_share"] = float(np.mean(shares))  # of the per-B variance: what more seeds can shrink


def gradient_noise(result, runs) -> dict:
    """Per batch size, the last noise probe of the runs at the swept lr nearest lr_opt (issue 13):
    B_simple and the noise kurtosis (seed medians; CI = the envelope of the seeds' CIs)."""
    rows, latest = [], [(m, last_probe(m)) for m in runs]
    for r in result["per_batch"]:
        at_b = [(m, p) for m, p in latest if m["batch_size"] == r["batch_size"] and p]
        if r["lr_opt"] is None or not at_b:
            continue
        lr = min({m["lr"] for m, _ in at_b}, key=lambda v: abs(math.log(v / r["lr_opt"])))
        probes = [p for m, p in at_b if m["lr"] == lr]
        row = {"batch_size": r["batch_size"], "lr": lr, "seeds": len(probes), "step": probes[0]["step"]}
        for key in ("b_simple", "kurtosis"):
            vals = [p[key] for p in probes if p[key] is not None]
            cis = [p[key + "_ci95"] for p in probes if p[key + "_ci95"]]
            row[key] = float(np.median(vals)) if vals else None
            row[key + "_ci95"] = None if not cis else [
                None if any(c[0] is None for c in cis) else min(c[0] for c in cis),
                None if any(c[1] is None for c in cis) else max(c[1] for c in cis)]
        row["tail"] = sorted({p["tail"] for p in probes if p["tail"]})
        rows.append(row)
    values = [r["b_simple"] for r in rows if r["b_simple"] is not None]
    return {"per_batch": rows, "b_simple_median": float(np.median(values)) if values else None,
            "where": "the last probe of each run at the swept lr nearest lr_opt"}


def run_fit(results_csv, cfg=None, out_dir=None, metrics=(), plans=()) -> dict:
    """Fit a results CSV with the config's analysis settings; write fit.json, best_per_batch.csv,
    report.md and the plots. `metrics`: the sweep's metrics.json files, validated before any output
    is written (a corrupt one is an error naming it) and drawn in training_curves.png. `plans`: an
    adaptive sweep's round plans (fit.json and the plots then say which round each point came from)."""
    from . import plans as plan_files, report

    cfg = cfg or config.defaults()
    path = Path(results_csv)
    sweep = read_table(path, cfg["train"]["final_window"])
    runs = load_all(metrics)
    round_plans = [plan_files.read_plan(p) for p in plans]
    if round_plans:  # an adaptive sweep: the local fits measure their windows on its grid
        set_grid(sweep, round_plans[0]["grid_lrs"])
    a = cfg["analysis"]
    result = analyse(sweep, a["estimator"], a["hypotheses"], a["bootstrap"], a["seed"], a["include_edge"])
    result["input"] = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    if round_plans:
        plan_files.annotate(result, round_plans)
    result["gradient_noise"] = gradient_noise(result, runs)
    result["verdict"] = " ".join(filter(None, [result["verdict"], noise_sentence(result)]))
    report.write_all(result, Path(out_dir) if out_dir else path.parent / "analysis", runs)
    return result
