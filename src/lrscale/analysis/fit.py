"""lr_opt per batch size, how it depends on B, and a verdict that never claims more than the data.

Every past version of this study was fooled by its analysis: argmin on a coarse grid, optima at the
grid's edge fitted as if real, flat landscapes fitted anyway, 2xSE called a 95% CI on 4 points, a
power law fitted to a curve that bends. `analyse` ties the package's modules (lrscale.analysis lists
them) together; `run_fit` is the CLI's entry point.
"""

import hashlib
import math
from pathlib import Path

import numpy as np

from .. import config
from . import band, budget, forms, locators, loss_noise, surface
from .names import FLAT, NO_FORM, POWER_LAW
from ..metrics import load_all
from ..noise import gradient_noise
from .optima import locate, quad_fit  # noqa: F401  (the fit's public API, used by tests and benches)
from .sweep_table import Sweep, read_table, set_grid  # noqa: F401
from .verdict import HYPOTHESIS_NAMES, edge_changes, holds, verdict

LN10 = math.log(10)
# fit.json's `shared_shape` (a public key): the shared-shape locator was deleted in issue 23, the joint
# model of the loss surface (`surface`) replaces it
SHARED_SHAPE_GONE = {"used": False, "reason": "deleted in issue 23: the joint model (surface) replaces it",
                     "shapes_differ": None}


def ols(batch_sizes, lr_opts):
    """Unweighted OLS of ln lr_opt on ln B with a t-based CI (n-2 dof): the reference fit."""
    y = np.log(np.asarray(lr_opts, float))
    line = forms.wls_line(np.log(np.asarray(batch_sizes, float)), y, np.ones(len(y)))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {**line, "C": math.exp(line["intercept"]),
            "r2": 1 - float(np.sum(np.square(line["residuals"]))) / ss_tot if ss_tot > 0 else math.nan}


def _bootstrap(included: list, locator, s: dict, noise: dict) -> list:
    """β from sweeps redrawn with the noise (seed means ± σ_B/√seeds, plus the B-to-B shape bias on
    each lr_opt), refitted with the same weights: calibrated with 1 or 2 seeds alike. Each optimum is
    redrawn by the locator that placed it."""
    rng = np.random.default_rng(s["seed"])
    sigma, dof = noise["sigma"], noise["dof"]
    b = [o.batch_size for o in included]
    var = [(LN10 * o.lr_opt_se_across_b_log10) ** 2 for o in included]
    betas = []
    for _ in range(s["bootstrap"] if len(included) >= 3 and sigma else 0):
        # σ itself is an estimate: draw it from its sampling distribution (χ² with the noise dof)
        sigma_k = sigma * math.sqrt(dof / rng.chisquare(dof)) if math.isfinite(dof) else sigma
        y = [LN10 * locator.draw_log10(o.batch_size, rng, sigma_k / sigma) for o in included]
        betas.append(forms.wls_line(np.log(b), y, var)["beta"])
    return betas


def _non_monotonic(included):
    """Where lr_opt falls from one used B to the next beyond the uncertainty of both (their CIs apart)."""
    return [{"from_batch_size": a["batch_size"], "to_batch_size": b["batch_size"], "lr_opt_from": a["lr_opt"],
             "lr_opt_to": b["lr_opt"]} for a, b in zip(included, included[1:]) if b["lr_opt"] < a["lr_opt"]
            and a.get("lr_opt_ci95") and b.get("lr_opt_ci95") and b["lr_opt_ci95"][1] < a["lr_opt_ci95"][0]]


def analyse(sweep: Sweep, estimator=None, hypotheses=None, bootstrap=None, seed=None, include_edge=None) -> dict:
    """lr_opt per batch size, the form of lr_opt(B), β with CIs, hypotheses and the verdict. Unset
    settings take the defaults of the config's analysis section (src/lrscale/schemas/config.schema.yaml)."""
    given = dict(estimator=estimator, hypotheses=hypotheses, bootstrap=bootstrap, seed=seed, include_edge=include_edge)
    s = {**config.defaults()["analysis"], **{k: v for k, v in given.items() if v is not None}}
    noise = loss_noise.of_sweep(sweep)
    per_b, local = locators.locate_all(sweep, noise, s["estimator"], s["include_edge"])
    included = [o for o in per_b if o.included]
    boot_beta = _bootstrap(included, local, s, noise)
    result = {
        "estimator": s["estimator"], "input_format": sweep.fmt, "seeds": sweep.seeds,
        "per_batch": [o.row() for o in per_b],
        "n_used": len(included), "included_batch_sizes": [o.batch_size for o in included],
        "excluded": [{"batch_size": o.batch_size, "reasons": o.flags or {"no_optimum": "not located"}}
                     for o in per_b if not o.included],
        **_noise_keys(noise), "shape_bias_log10": local.shape, "shared_shape": SHARED_SHAPE_GONE,
        "locating": local.describe(""),
        "bootstrap": {"n": s["bootstrap"], "seed": s["seed"], "method": "parametric: seed means + "
                      + ("σ per batch size" if noise["model"]["per_batch"] else "pooled noise")},
        "beta": None, "C": None, "se": None, "ci95_t": None, "ci95_bootstrap": None, "r2": None,
        "hypotheses": [], "non_monotonic": None, "forms": None, "preferred_form": None,
        "boot_betas": [float(b) for b in boot_beta],
    }
    if len(included) >= 3:
        _fit_forms(result, included, s["hypotheses"], boot_beta, noise["dof"])
    flat = [o.batch_size for o in per_b if FLAT in o.flags]
    result["surface"] = surface.fit_surface(sweep)  # it reads flat ones too: its own test is whether a bowl is there
    result["band"] = band.fit_band(sweep, lambda b: locators.noise_at(noise, b)["sigma"], skip=flat)
    result["answer"] = _answer(result, s["hypotheses"])
    result["budget"] = budget.assess(sweep, result["per_batch"])
    result["verdict"] = verdict(result, s["hypotheses"])
    return result


# fit.json keys named `noise` where they mean σ of one run's loss, and their clearer aliases (the old
# names stay: fit.json is a public contract); `noise_share` and `gradient_noise` keep their names.
LOSS_SIGMA_ALIASES = {"noise_sigma": "loss_sigma", "noise_source": "loss_sigma_source", "noise_dof": "loss_sigma_dof",
                      "noise_by_batch": "loss_sigma_by_batch"}


def _noise_keys(noise: dict) -> dict:
    """fit.json's σ of one run's loss, under its old and its new (LOSS_SIGMA_ALIASES) names; σ(B) per B
    with string keys, as JSON has them."""
    by_b = {k: {str(b): x for b, x in v.items()} if isinstance(v, dict) else v for k, v in noise["model"].items()}
    keys = {"noise_sigma": noise["sigma"], "noise_source": noise["source"], "noise_dof": noise["dof"],
            "noise_by_batch": by_b}
    return {**keys, **{LOSS_SIGMA_ALIASES[k]: v for k, v in keys.items()}}


def _fit_forms(result, included: list, hypotheses, boot_beta, noise_dof) -> None:
    b = [o.batch_size for o in included]
    se_ln = [LN10 * o.lr_opt_se_across_b_log10 for o in included]
    comparison = forms.compare(b, [o.lr_opt for o in included], se_ln, noise_dof)
    line = comparison["fits"][POWER_LAW].pop("line")
    y = np.log([o.lr_opt for o in included])
    w = 1 / np.square(se_ln)
    ss_tot = float(np.sum(w * (y - np.sum(w * y) / np.sum(w)) ** 2))
    result.update(beta=line["beta"], C=math.exp(line["intercept"]), se=line["se"], dof=line["dof"],
                  ci95_t=line["ci95"], t_975=line["t_975"], residuals=line["residuals"],
                  r2=1 - line["chi2"] / ss_tot if ss_tot > 0 else None, chi2_per_dof=line["chi2"] / line["dof"],
                  forms=comparison["fits"], preferred_form=comparison["preferred_form"],
                  preference_reason=comparison["preference_reason"])
    if len(boot_beta) >= 20:
        result["ci95_bootstrap"] = [float(np.quantile(boot_beta, 0.025)), float(np.quantile(boot_beta, 0.975))]
    for h in hypotheses:
        result["hypotheses"].append(_hypothesis(h, line["ci95"], result["ci95_bootstrap"],
                                                (line["beta"] - h) / line["se"] if line["se"] > 0 else None))
    result["non_monotonic"] = _non_monotonic([o.row() for o in included])
    # of the per-B variance, what more seeds can shrink (each optimum's locator knows)
    result["noise_share"] = float(np.mean([o.locator.noise_share(o) for o in included]))


def _hypothesis(h, ci_t=None, ci_bootstrap=None, z=None) -> dict:
    """One hypothesised β and which of the per-B optima's CIs hold it (None: that CI does not exist)."""
    return {"beta": h, "name": HYPOTHESIS_NAMES.get(round(h, 3), f"beta={h}"),
            "in_ci95_t": None if ci_t is None else holds(ci_t, h),
            "in_ci95_bootstrap": None if ci_bootstrap is None else holds(ci_bootstrap, h), "z": z}


def _compare(a, b) -> dict:
    """Two estimates of β: their difference, their CIs' combined half-width (infinite when a CI is
    open) and whether they disagree (the difference is larger)."""
    if a["beta"] is None or b["beta"] is None:
        return {"beta": b["beta"], "ci95": b.get("ci95"), "difference": None, "combined_half_width": None,
                "disagree": False}
    half = lambda ci: math.inf if None in ci else (ci[1] - ci[0]) / 2  # noqa: E731
    gap, combined = abs(a["beta"] - b["beta"]), math.hypot(half(a["ci95"]), half(b["ci95"]))
    return {"beta": b["beta"], "ci95": b["ci95"], "difference": gap, "combined_half_width": combined,
            "disagree": bool(gap > combined)}


def _answer(result, hypotheses) -> dict:
    """The β the verdict answers with: the joint model's (surface), cross-checked against the per-B
    optima's and the near-optimal band's when they give one (cross_check: false when fewer than 3
    batch sizes have a per-B optimum: the joint model still reads what every batch size holds). The
    hypotheses are tested only when lr_opt(B) is a power law by every account (the joint model's: no
    bending form preferred, no bend, no optimum held at a stability edge; the per-B optima's: no fall
    beyond the CIs), the hypotheses inside β's CI do not depend on an unseen bowl bottom under a diverged lr,
    and no cross-check disagrees beyond their combined CI (else `untested` says why: non_monotonic,
    stability_edge, open_edge (read before form and bend: it undercuts the runs' optima that any curve reads),
    form, bend or estimator_dependent; `disagreeing` names the cross-checks). Where no joint model fits, the
    per-B optima answer, untested (`no_bowl`) where the joint model found no bowl along its lr_opt curve. The
    per-B optima's own form test is a caveat, not a gate: in one benchmark cell (σ ∝ B^-½, one seed) it
    took the small batch sizes' noise for a bend in 0.17 of its sweeps (bench/README.md, "Why the
    verdict declines")."""
    joint, ci_t = result["surface"], result["ci95_t"]
    if joint["beta"] is None:  # no joint fit: the per-B optima answer, as before the joint model, the band checks,
        # unless the joint model found no bowl along its lr_opt curve: that undercuts any β (no_bowl)
        band = _compare({"beta": result["beta"], "ci95": ci_t}, result["band"])
        no_bowl = result["beta"] is not None and "bowl_p" in joint  # only the bowl test refuses with its p
        return {"estimator": "per_batch", "beta": result["beta"], "ci95": ci_t,
                "estimator_dependent": band["disagree"] if result["beta"] is not None else None,
                "disagreeing": ["band"] if band["disagree"] else [], "cross_checks": {"band": band},
                "untested": "no_bowl" if no_bowl else "estimator_dependent" if band["disagree"] else None,
                "surface_missing": joint.get("reason")}
    checks = {"per_batch": _compare(joint, {"beta": result["beta"], "ci95": ci_t}),
              "band": _compare(joint, result["band"])}
    disagreeing = [name for name, c in checks.items() if c["disagree"]]
    cross_check = result["beta"] is not None
    untested = next((why for why, fires in untested_reasons(result, disagreeing, hypotheses) if fires), None)
    if not cross_check:
        result["hypotheses"] = [_hypothesis(h) for h in hypotheses]
    for h in result["hypotheses"]:
        h["in_ci95_surface"] = holds(joint["ci95"], h["beta"])
    per_b = checks["per_batch"]
    return {"estimator": "surface", "beta": joint["beta"], "ci95": joint["ci95"], "cross_check": cross_check,
            "estimator_dependent": bool(disagreeing), "disagreeing": disagreeing, "cross_checks": checks,
            "difference": per_b["difference"], "combined_half_width": per_b["combined_half_width"] if cross_check
            else math.inf, "untested": untested}


def untested_reasons(result, disagreeing, hypotheses) -> list:
    """(why, whether it holds) in the order _answer reads them: the first that holds leaves the
    hypotheses untested. `form` is the joint model's preferred form, not the per-B optima's (a caveat).
    `open_edge`: where a bowl's bottom lies unseen between the highest lr read and a diverged one, a
    hypothesis lies inside β's CI for some places training may break there and outside it for others
    (verdict.edge_changes: inside the CIs' reach, outside their core; surface._open_edge)."""
    joint = result["surface"]
    return [("non_monotonic", bool(result["non_monotonic"])), ("stability_edge", bool(joint.get("lr_opt_at_edge"))),
            ("open_edge", bool(edge_changes(joint, hypotheses))),
            ("form", joint["forms"]["preferred"] != NO_FORM), ("bend", bool(joint["bend"]["bends"])),
            ("estimator_dependent", bool(disagreeing))]


BAND_POINTS, BAND_DRAWS = 60, 100  # a form's band: batch sizes drawn at, refits behind it


def _form_bands(result) -> None:
    """Each fitted form's curve and pointwise 95% band over the used batch sizes' range, written to
    fit.json (forms.<form>.band95) for the plots to draw: refits to lr_opt redrawn within its errors."""
    used = [r for r in result["per_batch"] if r["included"]]
    if not result.get("forms"):
        return
    b = [r["batch_size"] for r in used]
    grid = np.geomspace(min(b), max(b), BAND_POINTS)
    lr, se_ln = [r["lr_opt"] for r in used], [LN10 * r["lr_opt_se_across_b_log10"] for r in used]
    for name, f in result["forms"].items():
        low, high = forms.band(b, lr, se_ln, name, grid, n=BAND_DRAWS, seed=0)
        f["band95"] = {"batch_size": grid.tolist(), "lr_opt": forms.curve(f, grid).tolist(), "low": low, "high": high}


def run_fit(results_csv, cfg=None, out_dir=None, metrics=(), plans=(), horizon=None) -> dict:
    """Fit a results CSV with the config's analysis settings; write fit.json, best_per_batch.csv,
    report.md and the plots. `metrics`: the sweep's metrics.json files, validated before any output
    is written (a corrupt one is an error naming it) and drawn in training_curves.png. `plans`: an
    adaptive sweep's round plans (fit.json and the plots then say which round each point came from).
    `horizon`: the budget to fit, of a CSV with several (column `budget`); metrics at other horizons are left out."""
    from .. import plans as plan_files
    from . import report

    cfg = cfg or config.defaults()
    path = Path(results_csv)
    sweep = read_table(path, cfg["train"]["final_window"], horizon)
    runs = [m for m in load_all(metrics) if horizon is None or m.get("horizon", horizon) == horizon]
    round_plans = [plan_files.read_plan(p) for p in plans]
    if round_plans:  # an adaptive sweep: the local fits measure their windows on its grid
        set_grid(sweep, round_plans[0]["grid_lrs"])
    a = cfg["analysis"]
    result = analyse(sweep, a["estimator"], a["hypotheses"], a["bootstrap"], a["seed"], a["include_edge"])
    result["input"] = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "horizon": horizon}
    if round_plans:
        plan_files.annotate(result, round_plans)
    _form_bands(result)
    result["gradient_noise"] = gradient_noise(result, runs)
    result["optimizer_scaling"] = budget.optimizer_rules(runs)
    report.write_all(result, Path(out_dir) if out_dir else path.parent / "analysis", runs, sweep.table)
    return result
