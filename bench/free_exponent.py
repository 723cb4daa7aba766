"""Does a free-exponent McCandlish earn a place among the joint model's forms (issue 23.1)?

lr_opt(B) = lr_max / (1 + (B_noise/B)^α): McCandlish's form with α free (α = 1 is McCandlish; B_noise far
above the batch sizes run makes it a power law with exponent α, only as a limit). It is fitted by the joint
model of the loss surface (lrscale.analysis.surface: its model, runs within a decade of each best lr, the
walls, σ(B) weights and bounds; every batch size read, flat ones too; α takes the parameter slot the broken
line's second slope uses) next to the power law, McCandlish and the surge form. It nests McCandlish, so
it is tested against McCandlish by F(1, dof) ("earns": p < 0.05); whether it also has the lowest RSS of
all four ("best") is shown beside, with no test (it does not nest surge, and the power law only as a
limit). Per cell: both shares, its α (median, quartiles), and which two-parameter form fitted best. Cells: bending truths in the family (McCandlish B_noise = 32, surge
B_noise = 64), power laws (β = 0.5 asymmetric, 1 symmetric) and every truth of bench/truths_outside.py,
each with 1 and 2 seeds, σ = 0.01.

    python bench/free_exponent.py [--reps 100] [--truths nqm_sgd,messy] [--out bench/out/free_exponent.json]
"""

import argparse
import json
import math
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from fit_accuracy import synthetic, truth  # noqa: E402
from surface_constants import cell_rng  # noqa: E402
from truths_outside import TRUTHS  # noqa: E402

from lrscale.analysis import surface  # noqa: E402
from lrscale.analysis.names import MCCANDLISH, POWER_LAW, SURGE  # noqa: E402
from lrscale.analysis.surface import BETA, GAMMA, LN10, M  # noqa: E402

FREE = "free_exponent"
TWO_PARAMETER = (POWER_LAW, MCCANDLISH, SURGE)
INSIDE = {"mccandlish_32_sym": ("mccandlish", 32, "sym"), "mccandlish_32_asym": ("mccandlish", 32, "asym"),
          "surge_64_asym": ("surge", 64, "asym"), "power_law_0.5_asym": ("power_law", 0.5, "asym"),
          "power_law_1_sym": ("power_law", 1.0, "sym")}


class _FreeModel(surface._Model):
    """The joint model with one more form: McCandlish with exponent α = 1 + p[GAMMA]."""

    def curve(self, p, l10, above):
        if self.form != FREE:
            return super().curve(p, l10, above)
        half = (p[BETA] - l10 - math.log10(self.b_ref)) / 2  # ½·log10(B_noise / B)
        return p[M] - np.logaddexp(0.0, (1 + p[GAMMA]) * 2 * half * LN10) / LN10


def fit_forms(sweep):
    """Every form's RSS on the runs fit_surface reads (no batch size skipped), α, and the free form's dof."""
    read = surface._points(sweep)
    model = _FreeModel(read.used, read.pts, float(np.exp(np.mean(np.log(read.used)))), read.edges,
                       read.next_to_edge)
    p_pl, rss_pl = surface._best_fit(model)
    n_par = 2 + surface.N_SHAPE + 2 * len(read.used)
    trend = model.sigma_trend(p_pl, allow=len(read.pts) - n_par > 3)  # as fit_surface
    if trend["used"]:  # weighted by σ(B) as fit_surface does
        p_pl, rss_pl = model.fit(p_pl, {GAMMA: 0.0})
    rss, best = {POWER_LAW: rss_pl}, {}
    starts = np.log10([min(model.used), model.b_ref, max(model.used)])
    for form in (MCCANDLISH, SURGE):
        model.form = form
        best[form], rss[form] = min((model.fit(surface._form_start(model, p_pl, q), {GAMMA: 0.0}) for q in starts),
                                    key=lambda f: f[1])
    model.form = FREE
    fits = [model.fit(best[MCCANDLISH], {})]  # from the fitted McCandlish (α = 1): never worse than it
    for q in starts:
        for alpha in (0.5, 2.0):
            start = surface._form_start(model, p_pl, q)
            start[GAMMA] = alpha - 1  # set before m, so the start meets the power law's lr_opt at B_ref
            start[M] = 0.0
            start[M] = p_pl[M] - model.curve(start, 0.0, 0.0)
            fits.append(model.fit(start, {}))
    p_free, rss[FREE] = min(fits, key=lambda f: f[1])
    dof = len(read.pts) - (n_par + int(trend["used"])) - 1
    return rss, 1 + float(p_free[GAMMA]), dof


def draw(name, seeds, rng):
    if name in TRUTHS:
        return TRUTHS[name](rng, seeds)[0]
    kind, param, shape = INSIDE[name]
    return synthetic(truth(kind, param), shape, 0.01, seeds, rng)


def run(spec):
    """One cell: the free form's F test against the best two-parameter form, sweep by sweep."""
    name, seeds, reps = spec
    rng = cell_rng("free_" + name, seeds)
    p_values, alphas, lowest, two = [], [], [], []
    for _ in range(reps):
        sweep = draw(name, seeds, rng)
        if sum(np.isfinite(sweep.losses[b]).any() for b in sweep.batch_sizes) < 3:
            continue  # too few batch sizes trained to fit anything
        rss, alpha, dof = fit_forms(sweep)
        if dof < 1 or rss[FREE] <= 0:  # too few runs for the extra parameter: not tested
            continue
        f = (rss[MCCANDLISH] - rss[FREE]) / (rss[FREE] / dof)
        p_values.append(float(stats.f.sf(max(f, 0.0), 1, dof)))
        alphas.append(alpha)
        lowest.append(rss[FREE] < min(rss[k] for k in TWO_PARAMETER))
        two.append(min(TWO_PARAMETER, key=rss.get))
    row = {"truth": name, "seeds": seeds, "reps": reps, "tested": len(p_values)}
    if p_values:
        row.update(earns=float(np.mean(np.array(p_values) < 0.05)), lowest_rss=float(np.mean(lowest)),
                   alpha_median=float(np.median(alphas)),
                   alpha_quartiles=[float(q) for q in np.percentile(alphas, [25, 75])],
                   best_two_parameter={f: two.count(f) for f in TWO_PARAMETER})
    return row


def markdown(rows) -> str:
    lines = ["| truth | seeds | sweeps tested | beats McCandlish (F, p < 0.05) | lowest RSS of the four | α median "
             "[quartiles] | best two-parameter form (power law / McCandlish / surge) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["tested"]:
            lines.append(f"| {r['truth']} | {r['seeds']} | 0 | — | — | — | — |")
            continue
        q = r["alpha_quartiles"]
        lines.append(f"| {r['truth']} | {r['seeds']} | {r['tested']} | {r['earns']:.2f} | {r['lowest_rss']:.2f} | "
                     f"{r['alpha_median']:.2f} [{q[0]:.2f}, {q[1]:.2f}] | "
                     + " / ".join(str(r["best_two_parameter"][f]) for f in TWO_PARAMETER) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--truths", default=",".join([*INSIDE, *TRUTHS]))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench/out/free_exponent.json")
    args = ap.parse_args()
    names = args.truths.split(",")
    unknown = sorted(set(names) - set(INSIDE) - set(TRUTHS))
    if unknown:
        sys.exit(f"free_exponent.py: --truths: unknown {', '.join(unknown)}; expected some of "
                 f"{', '.join([*INSIDE, *TRUTHS])}")
    t0 = time.time()
    with Pool(args.workers) as pool:
        rows = pool.map(run, [(n, s, args.reps) for n in names for s in (1, 2)])
    print(markdown(rows))
    print(f"({time.time() - t0:.0f} s, {args.reps} sweeps a cell)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"reps": args.reps, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
