"""Where the bend answer's slope CIs get their width: each source on its own, on the same sweeps.

Where the bend test fires, each slope's CI (below and above the knot) is the model's Wald t-CI, widened
to lack of fit's t-CI where that fires and to the delete-one-B jackknife's t-CI (surface._bend_test,
_jackknife). This script scores each source alone against the truth's least-squares broken line, to
say which one sets the width where the answer over-covers, and prices three alternatives not adopted:
- Wald, bounds active: the walls' cubic terms (k ≥ 0) that sit at their bound (k < 1e-6) held fixed in
  the covariance (on a symmetric bowl the truth's k is 0, and a free k trades with the vertex both ways);
- jackknife, leverage-weighted: each B's refit deviation from the full fit weighted by 1 − h (h its
  leverage in the broken line's design over log B: unbiased under the model, like HC2; the full fit on the
  same runs the refits read, moved off _smooth's departure where it was read) instead of the
  delete-one variance (which inflates a high-leverage B's residual by its leverage, like HC3);
- jackknife, shape held: each refit keeps the full fit's walls (k, at the full fit's B positions t) and
  refits only the line and each B's floor and curvature (a free k may leave its bound as a B is left out).
Truths (7 B, 8..512, fit_accuracy's random-phase grid and σ = 0.01 but for NQM-SGD's own, 1 and 2 seeds):
- kinked: lr_opt a broken line at the knot (slope 0.8 to B = 64, 0.4 above): in the family, symmetric
  (c·d²) and asymmetric (c·d² + 2c·d³ above) bowls;
- mccandlish: lr_max / (1 + 128/B), symmetric bowl (fit_accuracy's over-covering one-seed cell);
- nqm_sgd: bench/truths_outside.py's SGD on a noisy quadratic (B = 512's vertex set apart: why the
  jackknife is there).
Only surface.fit_surface runs; _jackknife is wrapped to read its model (the refits are rerun here).
  python bench/slope_ci_sources.py [--reps 100] [--workers 2] [--out bench/results/slope_ci_sources.json]
"""

import argparse
import json
import math
import sys
import time
import zlib
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from lrscale.analysis import surface  # noqa: E402
from fit_accuracy import synthetic, truth  # noqa: E402
from smooth_reading import broken_line, kinked_line  # noqa: E402
from truths_outside import BATCH, nqm_sgd  # noqa: E402

CELLS = [("kinked", "sym", 1), ("kinked", "asym", 1), ("kinked", "sym", 2), ("kinked", "asym", 2),
         ("mccandlish", "sym", 1), ("nqm_sgd", "-", 2)]
SOURCES = ("wald", "wald_bounds_active", "jackknife", "jackknife_leverage", "jackknife_shape_held", "answer")


def draw(name, shape, seeds, rng):
    if name == "nqm_sgd":
        return nqm_sgd(rng, seeds)
    lr_opt = kinked_line() if name == "kinked" else truth(name, 128)
    return synthetic(lr_opt, shape, 0.01, seeds, rng), lr_opt


def two_slopes(q) -> np.ndarray:
    """The broken line's slopes below and above the knot in parameters q."""
    return np.array([q[surface.BETA], q[surface.BETA] + q[surface.GAMMA]])


def half_widths(seen, dof) -> dict:
    """The alternatives' half-widths per slope (lower, upper), from the model _jackknife was handed, and how many
    wall terms sit at their bound 0 (`walls_at_bound`)."""
    model, p, departure = seen["model"], seen["p_bend"], seen["departure"]
    n, grads = len(model.used), np.array([two_slopes(e) for e in np.eye(len(p))]).T  # slopes are linear in p
    s2 = float(np.sum(model.residuals(p) ** 2)) / dof
    at_bound = [i for i in range(surface.N_LINE, len(p)) if p[i] < 1e-6]
    t_model, t_jack = stats.t.ppf(0.975, dof), stats.t.ppf(0.975, n - 1)
    out = {"walls_at_bound": len(at_bound)}
    for key, fixed in (("wald", []), ("wald_bounds_active", at_bound)):
        cov = surface._covariance(model, p, fixed, s2)
        out[key] = [t_model * math.sqrt(max(float(g @ cov @ g), 0.0)) for g in grads]
    moved = model.shifted(-departure)
    drops = np.array([two_slopes(moved.without(b).fit(p, {})[0]) for b in model.used])
    shape = {i: float(p[i]) for i in range(surface.N_LINE, len(p))}
    held = []
    for b in model.used:
        sub = moved.without(b)
        sub.t = moved.t[moved.group != model.used.index(b)]  # the walls where the full fit put them
        held.append(sub.fit(p, shape)[0])
    held = np.array([two_slopes(q) for q in held])
    out["jackknife_shape_held"] = (t_jack * np.sqrt((n - 1) / n * np.sum((held - held.mean(axis=0)) ** 2, axis=0))).tolist()
    design = surface._line_design(model, True, model.used)
    lev = np.diag(design @ np.linalg.pinv(design.T @ design) @ design.T)
    full = two_slopes(moved.fit(p, {})[0])  # the full fit on the runs the refits read
    out["jackknife_leverage"] = (t_jack * np.sqrt(np.sum((1 - lev)[:, None] * (drops - full) ** 2, axis=0))).tolist()
    return out


def score(sweep, lr_opt) -> dict | None:
    """One sweep: None where the bend does not fire (or a B was dropped), else each slope's error against the
    truth's broken line and each source's half-width (the answer's: its CI, open ends as inf)."""
    seen = {}
    wrapped = surface._jackknife

    def reading(model, p_bend, slopes, departure=None):
        seen.update(model=model, p_bend=p_bend, departure=np.zeros(len(model.used)) if departure is None else departure)
        return wrapped(model, p_bend, slopes, departure)

    surface._jackknife = reading
    try:
        j = surface.fit_surface(sweep)
    finally:
        surface._jackknife = wrapped
    if j["beta"] is None or not j["bend"]["bends"] or j["batch_sizes"] != [int(b) for b in BATCH] or not seen:
        return None
    slopes = j["bend"]["slopes"]
    est = np.array([slopes["lower"], slopes["upper"]])
    out = half_widths(seen, j["dof"] - 1)  # the broken line's dof: the power law's less γ
    out["jackknife"] = [slopes["jackknife"][k + "_half_width"] for k in ("lower", "upper")]  # the answer's own
    cis = [slopes[k + "_ci95"] for k in ("lower", "upper")]
    target = broken_line(lr_opt)
    out["answer_hit"] = [(lo is None or lo <= t) and (hi is None or t <= hi) for (lo, hi), t in zip(cis, target)]
    out["answer"] = [math.inf if None in ci else (ci[1] - ci[0]) / 2 for ci in cis]
    out["err"] = (est - target).tolist()
    out["lack_of_fit_used"] = j["bend"]["lack_of_fit"]["used"]
    return out


def run_cell(spec) -> dict:
    name, shape, seeds, reps = spec
    rng = np.random.default_rng(zlib.crc32(repr(("slope_ci_sources", name, shape, seeds)).encode()))
    rows = [r for r in (score(*draw(name, shape, seeds, rng)) for _ in range(reps)) if r is not None]
    out = {"truth": name, "shape": shape, "seeds": seeds, "reps": reps, "bend_answers": len(rows)}
    if not rows:
        return out
    err = np.array([r["err"] for r in rows])
    out["error_sd"] = err.std(axis=0).tolist()
    out["mean_error"] = err.mean(axis=0).tolist()
    out["lack_of_fit_used"] = float(np.mean([r["lack_of_fit_used"] for r in rows]))
    out["walls_at_bound"] = float(np.mean([r["walls_at_bound"] for r in rows]))
    for src in SOURCES:
        half = np.array([r[src] for r in rows])
        hits = np.array([r["answer_hit"] for r in rows]) if src == "answer" else np.abs(err) <= half
        out[src] = {"coverage": hits.mean(axis=0).tolist(), "either_missed": float(np.mean(~hits.all(axis=1))),
                    "half_width": np.median(half, axis=0).tolist()}
    return out


def markdown(rows) -> str:
    pair = lambda v, spec=".3f": "/".join(format(x, spec) for x in v)  # noqa: E731
    head = ("| truth | bowl | seeds | bend answers | lack of fit used | walls at bound (of 4) | slope error sd | "
            + " | ".join(SOURCES) + " |")
    lines = [head, "|" + "---|" * (7 + len(SOURCES)),
             "| | | | | | | lower/upper | " + " | ".join("coverage; half-width" for _ in SOURCES) + " |"]
    for r in rows:
        if not r["bend_answers"]:
            lines.append(f"| {r['truth']} | {r['shape']} | {r['seeds']} | 0 |" + " - |" * (3 + len(SOURCES)))
            continue
        cells = [f"{pair(r[s]['coverage'], '.2f')}; {pair(r[s]['half_width'])}" for s in SOURCES]
        lines.append(f"| {r['truth']} | {r['shape']} | {r['seeds']} | {r['bend_answers']} | {r['lack_of_fit_used']:.2f} | "
                     f"{r['walls_at_bound']:.2f} | {pair(r['error_sd'])} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "slope_ci_sources.json"))
    args = ap.parse_args()
    start = time.time()
    with Pool(args.workers) as pool:
        rows = pool.map(run_cell, [cell + (args.reps,) for cell in CELLS], chunksize=1)
    print(markdown(rows))
    print(f"{time.time() - start:.0f} s")
    Path(args.out).write_text(json.dumps({"reps": args.reps, "rows": rows, "wall_s": time.time() - start}, indent=1))


if __name__ == "__main__":
    main()
