"""Accuracy of the beta fit on synthetic loss surfaces with a known beta.

loss = L0(B) + a * (log10 lr - log10 lr_opt(B))^2 + noise,  lr_opt = C * B^beta,
on the Phase-2 grid (7 batch sizes 8..512, 7 lrs half a decade apart, 3e-5..3e-2), C chosen so
lr_opt(64) = 1e-3. For each beta in {0.5, 0.667, 1.0}, two noise levels and every estimator:
mean error, RMSE and coverage of the t-based 95% CI (and of the bootstrap CI for the default).
Targets for the default estimator (parabola): |mean error| <= 0.03, coverage in [0.90, 0.99].
  python bench/fit_accuracy.py [--reps 200] [--boot 200] [--out bench/out/fit_accuracy.json]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from lrscale.fit import Sweep, analyse  # noqa: E402

BATCH = [8, 16, 32, 64, 128, 256, 512]
LRS = np.array([3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2])
CURVATURE = 0.2  # loss rise per decade^2 away from the optimum


def synthetic(beta, noise, rng):
    C = 1e-3 / 64**beta
    losses = {}
    for b in BATCH:
        x_opt = np.log10(C * b**beta)
        clean = 1.0 + 1.0 / np.sqrt(b) + CURVATURE * (np.log10(LRS) - x_opt) ** 2
        losses[b] = (clean + rng.normal(0, noise, len(LRS)))[None, :]
    return Sweep(BATCH, {b: LRS for b in BATCH}, losses, {b: None for b in BATCH}, "synthetic", [0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--boot", type=int, default=200, help="bootstrap replicates for the default estimator")
    ap.add_argument("--out", default="bench/out/fit_accuracy.json")
    args = ap.parse_args()
    rows = []
    t0 = time.time()
    print(f"{'estimator':9s} {'beta':>5s} {'noise':>6s} {'n':>4s} {'mean_err':>9s} {'rmse':>7s} {'cov_t':>6s} {'cov_boot':>8s} {'no_beta':>7s}")
    for noise in (0.005, 0.02):
        for beta in (0.5, 0.667, 1.0):
            for est in ("parabola", "argmin", "spline"):
                rng = np.random.default_rng(12345)  # same surfaces for every estimator
                errs, cov_t, cov_b, missing = [], [], [], 0
                for _ in range(args.reps):
                    r = analyse(synthetic(beta, noise, rng), est, bootstrap=args.boot if est == "parabola" else 0,
                                seed=int(rng.integers(1 << 31)))
                    if r["beta"] is None:
                        missing += 1
                        continue
                    errs.append(r["beta"] - beta)
                    cov_t.append(r["ci95_t"][0] <= beta <= r["ci95_t"][1])
                    if r["ci95_bootstrap"]:
                        cov_b.append(r["ci95_bootstrap"][0] <= beta <= r["ci95_bootstrap"][1])
                e = np.array(errs)
                row = {"estimator": est, "beta": beta, "noise": noise, "n": len(e), "mean_error": float(e.mean()),
                       "rmse": float(np.sqrt(np.mean(e**2))), "coverage_t": float(np.mean(cov_t)),
                       "coverage_bootstrap": float(np.mean(cov_b)) if cov_b else None, "no_beta": missing}
                rows.append(row)
                cb = f"{row['coverage_bootstrap']:.3f}" if cov_b else "   -"
                print(f"{est:9s} {beta:5.3f} {noise:6.3f} {len(e):4d} {row['mean_error']:+9.4f} {row['rmse']:7.4f} "
                      f"{row['coverage_t']:6.3f} {cb:>8s} {missing:7d}", flush=True)
    default = [r for r in rows if r["estimator"] == "parabola"]
    ok = all(abs(r["mean_error"]) <= 0.03 and 0.90 <= r["coverage_t"] <= 0.99 for r in default)
    print(f"default estimator targets (|mean error| <= 0.03, coverage in [0.90, 0.99]): {'MET' if ok else 'NOT MET'}"
          f"  ({time.time() - t0:.0f} s)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"reps": args.reps, "targets_met": ok, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
