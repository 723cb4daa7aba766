"""Accuracy of the critical batch size from the steps–samples tradeoff (issue 24.4;
lrscale.analysis.critical_batch) on sweeps with a known truth.

Each B's best loss is observed at horizons of 256·2^k steps (k = 0..9) with Gaussian noise σ. In
family, the loss after S steps is L∞ + A·(S/(1 + B_crit/B))^−α (A = 1, α = 0.5, L∞ = 1): to reach
a loss L takes S(B) = S_min(1 + B_crit/B) steps exactly. Other knees: "soft knee", steps scaling as
1 + (B_crit/B)^0.7 (inside the free-γ fit's family, outside McCandlish's), and "root knee",
√(1 + 3(B_crit/B)²) (outside both: a sharper, hyperbolic knee); in each B_crit, the B at which the
steps double over S_min, is the truth. Targets: the losses that B = 512 reaches at 2,500 steps' worth of S_min (L −
L∞ = 0.02), and with three targets also at 0.03 and 0.015 (each fitted alone). Per cell: how often
the CI holds the truth (an open end counts as holding it on that side), how often a CI is open, the
median |ln(B̂_crit / B_crit)| and the median CI width in ln; each sweep fitted with the knee's
exponent free (the default) and held at McCandlish's γ = 1.

    python bench/b_crit_accuracy.py [--reps 200] [--out bench/results/b_crit_accuracy.json]
"""

import argparse
import json
import math
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from lrscale.analysis.critical_batch import fit_b_crit, steps_to_target  # noqa: E402

BATCH = np.array([8, 16, 32, 64, 128, 256, 512])
HORIZONS = 256 * 2 ** np.arange(10)
ALPHA = 0.5
TARGETS = (0.02, 0.03, 0.015)  # L − L∞


def step_factor(b, b_crit, knee):
    """S(B)/S_min, equal to 2 at B = B_crit: McCandlish's 1 + B_crit/B, the soft knee 1 + (B_crit/B)^0.7,
    or the root knee √(1 + 3(B_crit/B)²)."""
    if knee == "root_knee":
        return np.sqrt(1 + 3 * (b_crit / b) ** 2)
    return 1 + (b_crit / b) ** (1.0 if knee == "mccandlish" else 0.7)


def sweep_losses(b_crit, knee, sigma, rng):
    """Best loss per B at every horizon, with noise."""
    eff = HORIZONS[None, :] / step_factor(BATCH[:, None], b_crit, knee)
    return 1.0 + eff**-ALPHA + rng.normal(0, sigma, eff.shape)


def run_cell(b_crit, knee, sigma, n_targets, reps, free_knee):
    rng = np.random.default_rng(zlib.crc32(repr((b_crit, knee, sigma)).encode()))  # the same sweeps for both fits
    held, open_, err, width, held_closed = [], [], [], [], []
    for _ in range(reps):
        losses = sweep_losses(b_crit, knee, sigma, rng)
        for gap in TARGETS[:n_targets]:
            steps = [steps_to_target(HORIZONS, row, 1.0 + gap) for row in losses]
            r = fit_b_crit(BATCH, steps, free_knee)
            if r["b_crit"] is None:
                continue
            lo, hi = r["ci95"]
            held.append((lo is None or lo <= b_crit) and (hi is None or b_crit <= hi))
            open_.append(lo is None or hi is None)
            err.append(abs(math.log(r["b_crit"] / b_crit)))
            if lo is not None and hi is not None:
                width.append(math.log(hi / lo))
                held_closed.append(lo <= b_crit <= hi)
    return {"b_crit": b_crit, "knee": knee, "sigma": sigma, "targets": n_targets, "free_knee": free_knee,
            "fits": len(held),
            "coverage": float(np.mean(held)), "coverage_closed": float(np.mean(held_closed)) if held_closed else None,
            "open": float(np.mean(open_)),
            "median_abs_log_error": float(np.median(err)), "median_ci_width_log": float(np.median(width)) if width else None}


def markdown(rows) -> str:
    head = ["truth", "B_crit", "σ", "targets", "fitted knee", "fits", "coverage", "coverage (closed CIs)", "open CI",
            "median |ln error|", "median CI width (ln)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        width = "-" if r["median_ci_width_log"] is None else f"{r['median_ci_width_log']:.2f}"
        lines.append(f"| {r['knee']} | {r['b_crit']} | {r['sigma']} | {r['targets']} | "
                     f"{'free γ' if r['free_knee'] else 'γ = 1'} | {r['fits']} | {r['coverage']:.2f} | "
                     f"{'-' if r['coverage_closed'] is None else format(r['coverage_closed'], '.2f')} | {r['open']:.2f} | {r['median_abs_log_error']:.3f} | {width} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--out", default="bench/out/b_crit_accuracy.json")
    args = ap.parse_args()
    t0 = time.time()
    rows = [run_cell(bc, knee, sigma, n, args.reps, free) for knee in ("mccandlish", "soft_knee", "root_knee") for bc in (32, 128)
            for sigma in (0.0005, 0.002) for n in (1, 3) for free in (False, True)]
    print(markdown(rows))
    in_family = [r for r in rows if r["knee"] == "mccandlish"]
    met = all(r["coverage"] >= 0.90 for r in in_family)
    print(f"{'MET    ' if met else 'NOT MET'}  in family: CI coverage >= 0.90 in every cell")
    outside = all(r["coverage"] >= 0.90 for r in rows if r["free_knee"])
    print(f"{'MET    ' if outside else 'NOT MET'}  free knee: CI coverage >= 0.90 in every cell, soft and root knees included")
    print(f"({time.time() - t0:.0f} s, {args.reps} sweeps per cell)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"reps": args.reps, "rows": rows, "in_family_coverage_met": met,
                               "free_knee_coverage_met": outside}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
