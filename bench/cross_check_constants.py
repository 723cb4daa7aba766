"""What the remaining tuning constants outside the joint model's fit cost on the answer (issue 23.3):
the per-B optima's (optima.FLOOR_STEPS, optima.MIN_CURVATURE_T), σ per batch size's
(loss_noise.HETEROGENEITY_P), the per-B form test's (forms.PREFER_DCHI2, UNDECIDED_DCHI2, GOF_P) and the
joint model's edge rules (surface.HELD_DECADES, surface.MIN_INSIDE), each varied alone around its value,
on the cells of bench/surface_constants.py (every out-of-family truth of bench/truths_outside.py and four
inside power laws, 1 and 2 seeds; the same draws).

Where they were set: FLOOR_STEPS, MIN_CURVATURE_T and the form test's constants with issue 10 on
bench/fit_accuracy.py's inside cells (UNDECIDED_DCHI2 on its McCandlish 32 cell), so the out-of-family rows
are held out for them and the inside power laws are not; HETEROGENEITY_P (5%, Cochran's Q on the seed
spreads, and the trend test of σ in log B) with issue 28.3, with no record of a tuning run; HELD_DECADES (the
stability cap's and the open-edge rule's 0.01-decade tolerance) with the cap, in the commit that drew the cliff
truths (in sample for it); MIN_INSIDE (2) on the budget demo's 32k-sample sweep and one synthetic sweep whose
grid missed every optimum, none of these cells. Since issue 23 the per-B optima are a cross-check (the verdict declines where they disagree
with the joint β beyond the two CIs) and their form test is a caveat (it decides only where no joint model
fits), so each constant is scored on the answer: the verdict's declines, the true β ruled out, a wrong single
hypothesis; and on the per-B optima themselves: their β's t-CI coverage and half-width, their lr_opt CIs'
coverage, how often they disagree with the joint β (estimator_dependent), and their form: a bending form
(McCandlish, surge or undecided between them), undecided, no form passing its χ² test.

One worker runs every setting on a sweep before the next; the joint fit is computed once per sweep and
per setting of the constants it reads after its fit (a setting that changes neither the fit's inputs nor its
constants reuses it), so the per-B settings cost one analysis each without a refit (the skipped set was its key until 2026-12-06,
when the joint model stopped skipping the per-B fit's flat batch sizes).

    python bench/cross_check_constants.py [--reps 60] [--only FLOOR_STEPS] [--cells messy nqm_sgd]
                                          [--seeds 1] [--out bench/results/cross_check_constants.json]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fit_accuracy import BENDING, judge  # noqa: E402
from lrscale.analysis.names import NO_FORM, UNDECIDED  # noqa: E402
from surface_constants import INSIDE_BETA, NAMES, _draw, cell_rng, run_cells, set_constants  # noqa: E402
from truths_outside import BATCH, TRUTHS, slope  # noqa: E402

from lrscale.analysis import fit, forms, loss_noise, optima, surface  # noqa: E402

MODULE = {"FLOOR_STEPS": optima, "MIN_CURVATURE_T": optima, "HETEROGENEITY_P": loss_noise, "PREFER_DCHI2": forms,
          "UNDECIDED_DCHI2": forms, "GOF_P": forms, "HELD_DECADES": surface, "MIN_INSIDE": surface}
IN_USE = {c: getattr(m, c) for c, m in MODULE.items()}
SETTINGS = ([("FLOOR_STEPS", v) for v in (0.0, 0.05)] + [("MIN_CURVATURE_T", v) for v in (2.0, 4.0)]
            + [("HETEROGENEITY_P", v) for v in (0.01, 0.2)] + [("PREFER_DCHI2", v) for v in (2.0, 8.0)]
            + [("UNDECIDED_DCHI2", v) for v in (0.0, 2.0)] + [("GOF_P", v) for v in (0.001, 0.05)]
            + [("HELD_DECADES", v) for v in (0.003, 0.03)] + [("MIN_INSIDE", v) for v in (3,)])
# what each constant's table shows (the in-use column is the same analysis for every constant)
SHOWN = {"per_b": ("per_b_coverage", "per_b_half_width", "per_b_lr_coverage", "estimator_dependent", "declined",
                   "ruled_out"),
         "form": ("per_b_bending", "per_b_undecided", "per_b_no_form", "declined", "wrong_single"),
         "edge": ("declined", "ruled_out", "wrong_single")}
TABLE = {"FLOOR_STEPS": "per_b", "MIN_CURVATURE_T": "per_b", "HETEROGENEITY_P": "per_b", "PREFER_DCHI2": "form",
         "UNDECIDED_DCHI2": "form", "GOF_P": "form", "HELD_DECADES": "edge", "MIN_INSIDE": "edge"}


class _JointCache:
    """surface.fit_surface, computed once per sweep for each value of the constants it reads after its fit
    (HELD_DECADES, MIN_INSIDE)."""

    def __init__(self, fit_surface):
        self.fit_surface, self.store, self.sweep = fit_surface, {}, None

    def __call__(self, sweep, b_ref=None):
        if sweep is not self.sweep:
            self.sweep, self.store = sweep, {}
        key = (b_ref, surface.HELD_DECADES, surface.MIN_INSIDE)
        if key not in self.store:
            self.store[key] = self.fit_surface(sweep, b_ref=b_ref)
        return self.store[key]


def _score(r, beta_true, lr_opt) -> dict:
    """One analysis: the verdict (judge, as now), the per-B optima's β CI and form, their lr_opt CIs."""
    out = judge(r, beta_true, True, lr_opt)
    out["estimator_dependent"] = "per_batch" in r["answer"].get("disagreeing", [])
    true_lr = dict(zip(BATCH.tolist(), lr_opt))
    hits = [p["lr_opt_ci95"][0] <= true_lr[p["batch_size"]] <= p["lr_opt_ci95"][1]
            for p in r["per_batch"] if p["included"] and p["lr_opt_ci95"]]
    out["per_b_lr_coverage"] = float(np.mean(hits)) if hits else None
    out["excluded"] = len(r["excluded"])
    if r["beta"] is not None:
        lo, hi = r["ci95_t"]
        form = r["preferred_form"]
        out.update(per_b_coverage=lo <= beta_true <= hi, per_b_half_width=(hi - lo) / 2,
                   per_b_bending=form in BENDING, per_b_undecided=form == UNDECIDED, per_b_no_form=form == NO_FORM)
    return out


def run(spec):
    """Every setting (the in-use one first) on one cell's sweeps: a row per setting (`_summary`)."""
    settings, name, seeds, reps = spec
    rng = cell_rng(name, seeds)
    scores = {s: [] for s in settings}
    plain, surface.fit_surface = surface.fit_surface, _JointCache(surface.fit_surface)  # fit.analyse reads it
    try:
        for i in range(reps):
            sweep, lr_opt = _draw(name, seeds, rng)
            beta_true = slope(lr_opt) if name in TRUTHS else INSIDE_BETA[name]
            for s in settings:
                set_constants(MODULE, IN_USE, *s)  # ("in use", None) resets them all
                scores[s].append(_score(fit.analyse(sweep, bootstrap=0, seed=i), beta_true, lr_opt))
    finally:
        set_constants(MODULE, IN_USE, "in use", None)
        surface.fit_surface = plain
    return [{"constant": c, "value": v, "truth": name, "seeds": seeds, "reps": reps, **_summary(scores[(c, v)])}
            for c, v in settings]


def _summary(scores) -> dict:
    mean = lambda key: _stat(np.mean, [s[key] for s in scores if s.get(key) is not None])  # noqa: E731
    return {"declined": mean("declined"), "ruled_out": mean("ruled_out"), "wrong_single": mean("wrong_single"),
            "estimator_dependent": mean("estimator_dependent"), "per_b_coverage": mean("per_b_coverage"),
            "per_b_half_width": _stat(np.median, [s["per_b_half_width"] for s in scores if "per_b_half_width" in s]),
            "per_b_bending": mean("per_b_bending"), "per_b_undecided": mean("per_b_undecided"),
            "per_b_no_form": mean("per_b_no_form"), "per_b_lr_coverage": mean("per_b_lr_coverage"),
            "excluded": mean("excluded"), "per_b_fits": sum("per_b_coverage" in s for s in scores)}


def _stat(fn, values):
    return float(fn(values)) if values else None


def markdown(rows) -> str:
    """One table per kind of constant: a row per cell, a column per setting (in use first)."""
    at = {(r["constant"], r["value"], r["truth"], r["seeds"]): r for r in rows}
    cells = sorted({(r["truth"], r["seeds"]) for r in rows}, key=lambda c: (list(NAMES).index(c[0]), c[1]))
    out = []
    for kind, shown in SHOWN.items():
        settings = [("in use", None)] + [(c, v) for c, v in SETTINGS if TABLE[c] == kind and (c, v, *cells[0]) in at]
        if len(settings) == 1:
            continue
        in_use = ", ".join(f"{c}={IN_USE[c]:g}" for c in MODULE if TABLE[c] == kind)
        head = ["truth", "seeds"] + [f"in use ({in_use})" if c == "in use" else f"{c}={v:g}" for c, v in settings]
        out += [" / ".join(shown) + " per setting", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, seeds in cells:
            parts, fits = [name, str(seeds)], at[("in use", None, name, seeds)]["per_b_fits"]
            for c, v in settings:
                r = at[(c, v, name, seeds)]
                text = " / ".join("-" if r[k] is None else f"{r[k]:.3f}" if "width" in k else f"{r[k]:.2f}"
                                  for k in shown)
                parts.append(text + (f" ({r['per_b_fits']} per-B fits)" if kind == "per_b" and r["per_b_fits"] != fits else ""))
            out.append("| " + " | ".join(parts) + " |")
        out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", nargs="+", choices=sorted(MODULE), help="vary only these constants (each alone)")
    ap.add_argument("--cells", nargs="+", choices=list(NAMES), help="only these truths (default: all)")
    ap.add_argument("--seeds", nargs="+", type=int, choices=(1, 2), default=[1, 2])
    ap.add_argument("--out", help="JSON path (default bench/out/cross_check_constants[_<only>].json)")
    args = ap.parse_args()
    t0 = time.time()
    settings = [("in use", None)] + [s for s in SETTINGS if args.only is None or s[0] in args.only]
    args.out = args.out or f"bench/out/cross_check_constants{'_' + '_'.join(args.only) if args.only else ''}.json"
    specs = [(settings, name, seeds, args.reps) for name in args.cells or NAMES for seeds in args.seeds]
    run_cells(run, specs, args, markdown, t0)


if __name__ == "__main__":
    main()
