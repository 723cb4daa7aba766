"""Accuracy of the fit across horizons (issue 24.3): lrscale.analysis.horizons on synthetic sweeps
at 3 horizons D with a known truth.

Each horizon is its own Phase-2-shaped sweep (fit_accuracy.synthetic's: 7 B = 8..512, 7 lrs half a
decade apart, σ = 0.01, 1 or 2 seeds) on ONE grid with a random phase for all three horizons (a sweep
has one lr grid), fitted by `analyse` as the DAG does, then summarised by `horizons.summarize`. Truths:
  in family     lr_opt = C·B^0.5·(D/D_mid)^−0.3, symmetric or asymmetric loss shape
  beta_drifts   β = 0.4, 0.5, 0.6 at the three horizons (γ 0.3 at the middle B): outside the joint
                model, which the interaction test δ should flag
  nqm_samples   SGD on the noisy quadratic model of bench/truths_outside.py with a samples budget:
                T = D/B steps at constant lr, D = 64k, 256k, 1M samples; its optima are computed, not
                drawn from any model of ours (pseudo-true β, γ, δ: least squares on those optima)
Per cell: coverage of the joint β and γ CIs (of the truth, or the pseudo-truth), their |mean error|,
how often β is said to change with D (δ's CI excludes 0), and how often no joint fit was made.
  python bench/horizon_accuracy.py [--reps 200] [--workers 2] [--out bench/results/horizon_accuracy.json]
"""

import argparse
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_accuracy import CURVATURE, DIVERGE_ABOVE  # noqa: E402
from truths_outside import BATCH, NQM_INITIAL, geo_centre, make_sweep, nqm_loss, random_phase_grid  # noqa: E402
from lrscale.analysis import horizons  # noqa: E402
from lrscale.analysis.fit import analyse  # noqa: E402

D_REL = np.array([1.0, 4.0, 16.0])  # horizons relative to the first (D_mid = 4)
NQM_D = np.array([65536, 262144, 1048576])  # samples


def pseudo_truth(lr_opt: np.ndarray, ds) -> dict:
    """Least squares of ln lr_opt on [1, ln B, −ln D] (and the interaction) over the true optima."""
    ln_b, ln_d = np.meshgrid(np.log(BATCH), np.log(ds), indexing="xy")
    ln_b, ln_d, y = ln_b.ravel(), ln_d.ravel(), np.log(lr_opt).ravel()
    x = np.column_stack([np.ones_like(y), ln_b, -ln_d])
    beta, gamma = np.linalg.lstsq(x, y, rcond=None)[0][1:]
    xi = np.column_stack([x, (ln_b - ln_b.mean()) * (ln_d - ln_d.mean())])
    return {"beta": float(beta), "gamma": float(gamma), "delta": float(np.linalg.lstsq(xi, y, rcond=None)[0][3])}


def power_optima(betas, gamma=0.3):
    """lr_opt[D, B]: C·B^β_D·(D/4)^−γ, β_D one per horizon (centred at the middle B)."""
    return np.array([geo_centre(BATCH.astype(float) ** b) * (d / 4.0) ** -gamma for b, d in zip(betas, D_REL)])


def nqm_optima() -> np.ndarray:
    from scipy.optimize import minimize_scalar

    out = np.zeros((len(NQM_D), len(BATCH)))
    for i, d in enumerate(NQM_D):
        for j, b in enumerate(BATCH):
            steps = d / b
            grid = np.linspace(-4, np.log10(1.99), 400)
            best = grid[np.argmin([nqm_loss(10**x, b, steps) for x in grid])]
            res = minimize_scalar(lambda x: nqm_loss(10**x, b, steps), bounds=(best - 0.02, best + 0.02),
                                  method="bounded", options={"xatol": 1e-7})
            out[i, j] = 10**res.x
    return out


def power_sweep(rng, seeds, lrs, opt_row, shape):
    """fit_accuracy.synthetic's sweep (σ 0.01) on a given grid: one grid for every horizon, as a sweep has."""
    losses = {}
    for b, opt in zip(BATCH, opt_row):
        d = np.log10(lrs) - np.log10(opt)
        clean = 1.0 + 1.0 / np.sqrt(b) + CURVATURE * d**2 + (2 * CURVATURE * np.maximum(d, 0) ** 3 if shape == "asym" else 0)
        table = clean + rng.normal(0, 0.01, (seeds, len(lrs)))
        table[:, d > DIVERGE_ABOVE] = np.nan
        losses[int(b)] = table
    return make_sweep(lrs, losses)


def nqm_sweep(rng, seeds, lrs, d):
    losses = {}
    for b in BATCH:
        clean = np.array([nqm_loss(lr, b, d / b) for lr in lrs])
        table = clean * np.exp(rng.normal(0, 0.005, (seeds, 7)))
        table[:, ~(clean - 1 <= 10 * NQM_INITIAL)] = np.nan
        losses[int(b)] = table
    return make_sweep(lrs, losses)


def cells():
    inside = [(f"power 0.5, γ 0.3, {shape}", "power", shape, (0.5, 0.5, 0.5)) for shape in ("sym", "asym")]
    return [(*c, seeds) for c in [*inside, ("beta_drifts 0.4→0.6", "power", "asym", (0.4, 0.5, 0.6)),
                                  ("nqm_samples", "nqm", None, None)] for seeds in (1, 2)]


def run_cell(spec):
    name, kind, shape, betas, seeds, reps, seed = spec
    rng = np.random.default_rng(seed)
    optima = nqm_optima() if kind == "nqm" else power_optima(betas)
    truth = pseudo_truth(optima, NQM_D if kind == "nqm" else D_REL)
    log = []
    for _ in range(reps):
        fits, lrs = {}, random_phase_grid(rng, float(np.mean(np.log10(optima))))  # one grid, every horizon
        for i, d in enumerate(NQM_D if kind == "nqm" else (D_REL * 1000).astype(int)):
            sweep = nqm_sweep(rng, seeds, lrs, d) if kind == "nqm" else power_sweep(rng, seeds, lrs, optima[i], shape)
            fits[int(d)] = analyse(sweep, bootstrap=0)
        log.append(horizons.summarize(fits)["joint"])
    return {"cell": name, "seeds": seeds, "truth": truth, **score(log, truth)}


def score(log, truth) -> dict:
    made = [j for j in log if j["beta"] is not None]
    cov = lambda key: float(np.mean([j[f"{key}_ci95"][0] <= truth[key] <= j[f"{key}_ci95"][1] for j in made]))  # noqa: E731
    err = lambda key: float(np.mean([j[key] - truth[key] for j in made]))  # noqa: E731
    half = lambda key: float(np.median([(j[f"{key}_ci95"][1] - j[f"{key}_ci95"][0]) / 2 for j in made]))  # noqa: E731
    return {"reps": len(log), "no_joint_fit": 1 - len(made) / len(log),
            **{f"{k}_coverage": cov(k) for k in ("beta", "gamma")}, **{f"{k}_error": err(k) for k in ("beta", "gamma")},
            **{f"{k}_half_width": half(k) for k in ("beta", "gamma")},
            "beta_changes": float(np.mean([j["beta_changes"] for j in made]))}


def markdown(rows) -> str:
    out = ["| truth | seeds | pseudo-true β, γ, δ | β cov. (half-width) | β error | γ cov. (half-width) | γ error "
           "| says β changes | no joint fit |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["truth"]
        out.append(f"| {r['cell']} | {r['seeds']} | {t['beta']:.3f}, {t['gamma']:.3f}, {t['delta']:.3f} "
                   f"| {r['beta_coverage']:.2f} ({r['beta_half_width']:.3f}) | {r['beta_error']:+.3f} "
                   f"| {r['gamma_coverage']:.2f} ({r['gamma_half_width']:.3f}) | {r['gamma_error']:+.3f} "
                   f"| {r['beta_changes']:.2f} | {r['no_joint_fit']:.2f} |")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "horizon_accuracy.json"))
    args = p.parse_args()
    t0 = time.time()
    specs = [(*c, args.reps, 1000 + i) for i, c in enumerate(cells())]
    with Pool(args.workers) as pool:
        rows = pool.map(run_cell, specs)
    table = markdown(rows)
    print(table)
    print(f"{time.time() - t0:.0f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"reps": args.reps, "wall_s": time.time() - t0, "rows": rows}, indent=1))
    out.with_suffix(".txt").write_text(table + "\n")


if __name__ == "__main__":
    main()
