"""Why the symmetric power-law cells' joint β CIs over-cover, and how much of it a boundary-aware calibration
of β's profile (a chi-bar-squared threshold in place of F(1, dof)) could take back.

Per sweep, the joint model is fitted as lrscale does it (`surface.fit_surface`; a sweep declined after β's
profile counts too), and at its estimate the model is linearised: the finite-difference Jacobian of its
weighted residuals in m, β and the four wall steepnesses k± (the variable-projection residuals, a_B and c_B
projected out as the fit does, so the columns lie off those directions to first order; the stability edges'
rows are left out, a cap being no loss). In that linear model the profile's likelihood ratio for β (RSS at
the true β, the other parameters refitted, minus the least RSS, in units of σ²) is drawn DRAWS times, k± held
≥ 0 where they are taken as truly 0 and free elsewhere; its 95% quantile over χ²₁'s 3.841 is the "scale" the
profile's threshold would take (in general a chi-bar-squared ratio for an interior β may lie above χ²₁ as well
as below it):
  at the estimate  the k± that the estimate holds on the bound taken as 0 (a plug-in: what an analysis could
                   compute; 1 where none is on the bound)
  at the truth     every k± taken as 0: the symmetric truths' own walls (an oracle no analysis has; shown
                   for the symmetric cells only)
against what the cell's CI needs: (the SD of its errors in CI units)², z = error / (half-width / 1.96) over
the score_targets store's sweeps of that cell at HEAD's version (a width ∝ √threshold), so a scale that
explains the over-coverage comes near it.

    python bench/chi_bar_scale.py [--sweeps 40] [--cells SUBSTRING ...] [--out bench/out/chi_bar_scale.json]
"""

import argparse
import contextlib
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_targets import all_cells, analysis_version, draws, read_store  # noqa: E402

from lrscale.analysis import surface  # noqa: E402

DRAWS = 10_000  # draws of the linear model's likelihood ratio per sweep (χ²₁'s 95% quantile from this many: SE 2%)
BOUND = 1e-6  # a k± at or under this is on its bound 0
CELLS = ("inside power_law 0.5 sym", "inside power_law 0.667 sym", "inside power_law 1.0 sym",
         "inside power_law 0.5 σ∝B^-½ sym", "inside power_law 1.0 σ∝B^-½ sym", "inside power_law 1.0 asym",
         "outside ragged_edge", "outside messy")


def bounded_rss(a, r) -> np.ndarray:
    """Each row of r's least RSS over x ≥ 0 of |r − a·x|² (a: a few columns), exactly and for every row at once:
    the least RSS over the subsets of a's columns whose least-squares coefficients are all ≥ 0 (the
    non-negative optimum is least squares on its own support, and every such subset's fit is feasible)."""
    best = np.sum(r**2, axis=1)  # the empty subset
    for size in range(1, a.shape[1] + 1):
        for cols in itertools.combinations(range(a.shape[1]), size):
            sub = a[:, cols]
            coef = np.linalg.lstsq(sub, r.T, rcond=None)[0]
            rss = np.sum((r.T - sub @ coef) ** 2, axis=0)
            best = np.where(np.all(coef >= 0, axis=0), np.minimum(best, rss), best)
    return best


def scale(model, p, on) -> float:
    """The 95% quantile of β's profile likelihood ratio in the model linearised at p, the k± at positions `on`
    held ≥ 0 (truly 0), the other k± and m free, over χ²₁'s 95% quantile; 1 where `on` is empty."""
    if not on:
        return 1.0
    base = model.linear(p)[0]

    def column(i):
        q = p.copy()
        q[i] += 1e-5
        return (model.linear(q)[0] - base) / 1e-5

    shape = range(surface.N_LINE, surface.N_LINE + surface.N_SHAPE)
    free = np.column_stack([column(i) for i in [surface.M] + [i for i in shape if i not in on]])
    bounded = np.column_stack([column(i) for i in on])
    z = np.random.default_rng(0).standard_normal((DRAWS, len(base)))

    def rss(out):  # each draw's least RSS with the columns `out` projected out and the bounded k± ≥ 0
        basis, _ = np.linalg.qr(out)
        return bounded_rss(bounded - basis @ (basis.T @ bounded), z - (z @ basis) @ basis.T)

    ratio = rss(free) - rss(np.hstack([free, column(surface.BETA)[:, None]]))
    return float(np.quantile(ratio, 0.95) / stats.chi2.ppf(0.95, 1))


@contextlib.contextmanager
def profile_as(make):
    """surface._profile_ci replaced by make(the original) while the block runs, then restored."""
    profile = surface._profile_ci
    surface._profile_ci = make(profile)
    try:
        yield
    finally:
        surface._profile_ci = profile


def fitted(sweep):
    """(model, estimate) of the joint power law at the point its β profile is searched, or None (no β)."""
    seen = []

    def capture(profile):
        def searched(model, p_hat, *args):
            seen.append((model, p_hat.copy()))
            return profile(model, p_hat, *args)
        return searched

    with profile_as(capture):
        surface.fit_surface(sweep)
    return seen[0] if seen else None


def needed(records) -> float | None:
    """(SD of the errors in CI units)² over a cell's stored sweeps with a closed joint CI."""
    z = [r["error"] / (r["half_width"] / 1.96) for r in records if r.get("error") is not None and r.get("half_width")]
    return statistics.stdev(z) ** 2 if len(z) > 1 else None


def cell_row(cell, world, spec, sweeps, stored) -> dict:
    """One cell's scales (medians over its sweeps) and its need from the store."""
    plug, truth, on_counts = [], [], []
    for sweep, _, _ in draws(world, spec, sweeps):
        fit = fitted(sweep)
        if fit is None:
            continue
        model, p = fit
        on = [surface.N_LINE + i for i in range(surface.N_SHAPE) if p[surface.N_LINE + i] <= BOUND]
        on_counts.append(len(on))
        plug.append(scale(model, p, on))
        if " sym " in cell:
            truth.append(scale(model, p, list(range(surface.N_LINE, surface.N_LINE + surface.N_SHAPE))))
    return {"cell": cell, "sweeps": len(plug), "k_on_bound_mean": float(np.mean(on_counts)),
            "scale_at_estimate": float(np.median(plug)), "scale_at_estimate_min": float(np.min(plug)),
            "scale_at_truth": float(np.median(truth)) if truth else None,
            "needed": needed(stored.get(cell, {}).values()), "stored_sweeps": len(stored.get(cell, {}))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=40)
    ap.add_argument("--cells", nargs="*", default=list(CELLS), help="substrings: only cells whose id holds one")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "chi_bar_scale.json"))
    args = ap.parse_args()
    start = time.time()
    stored = read_store(ROOT / "bench" / "results" / "score_targets.jsonl", analysis_version())
    chosen = {c: v for c, v in all_cells().items() if any(s in c for s in args.cells)}
    rows = [cell_row(c, *chosen[c], args.sweeps, stored) for c in chosen]
    fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    print("| cell | sweeps | k± on bound (mean of 4) | scale at the estimate (median, min) | scale at the truth "
          "(median) | needed: (z SD)² (stored sweeps) |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['cell']} | {r['sweeps']} | {r['k_on_bound_mean']:.1f} | {fmt(r['scale_at_estimate'])} "
              f"({fmt(r['scale_at_estimate_min'])}) | {fmt(r['scale_at_truth'])} | {fmt(r['needed'])} "
              f"({r['stored_sweeps']}) |")
    wall_s = time.time() - start
    print(f"{len(rows)} cells, {args.sweeps} sweeps each, {DRAWS} draws a scale, {wall_s:.0f} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"draws": DRAWS, "sweeps": args.sweeps, "wall_s": wall_s, "rows": rows},
                                         indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
