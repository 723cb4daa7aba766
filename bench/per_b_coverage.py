"""Per-B lr_opt CIs on the truths outside the fit's family (bench/truths_outside.py): how often each
batch size's 95% CI holds its true lr_opt, and how wide it is (median hi/lo), with and without the
quantisation an unseen side adds (lrscale.analysis.optima.unseen_floor). Only the per-B locator is
measured (no bootstrap), so a cell of 40 sweeps takes under a minute on one core.

    python bench/per_b_coverage.py [--truths narrowing_basin,messy,...] [--seeds 1,2] [--reps 40]
        [--out bench/out/per_b_coverage.json]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "bench"), str(REPO / "src")]
from truths_outside import TRUTHS  # noqa: E402

from lrscale.analysis import fit, optima  # noqa: E402


def cell(name: str, seeds: int, reps: int, unseen: bool) -> dict:
    """One truth at one seed count: coverage and median hi/lo of the included per-B CIs."""
    rng = np.random.default_rng(11)  # the same sweeps with and without the unseen floor
    floor, t0 = optima.unseen_floor, time.time()
    if not unseen:
        optima.unseen_floor = lambda loc: 0.0
    hits, ratios = [], []
    try:
        for _ in range(reps):
            sweep, lr_opt = TRUTHS[name](rng, seeds)
            for p, true in zip(fit.analyse(sweep, bootstrap=0)["per_batch"], lr_opt):
                if p["included"] and p["lr_opt_ci95"]:
                    lo, hi = p["lr_opt_ci95"]
                    hits.append(lo <= true <= hi)
                    ratios.append(hi / lo)
    finally:
        optima.unseen_floor = floor
    return {"truth": name, "seeds": seeds, "unseen_floor": unseen, "coverage": float(np.mean(hits)) if hits else None,
            "cis": len(hits), "median_hi_lo": float(np.median(ratios)) if ratios else None,
            "wall_s": time.time() - t0}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--truths", default=",".join(TRUTHS))
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--reps", type=int, default=40)
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "per_b_coverage.json"))
    args = p.parse_args()
    rows = []
    print("| truth | seeds | per-B CIs | coverage without → with | median hi/lo without → with |")
    print("|---|---|---|---|---|")
    for name in args.truths.split(","):
        for seeds in map(int, args.seeds.split(",")):
            before, after = (cell(name, seeds, args.reps, unseen) for unseen in (False, True))
            rows += [before, after]
            fmt = lambda r, k, spec: "—" if r[k] is None else format(r[k], spec)  # noqa: E731
            print(f"| {name} | {seeds} | {after['cis']} | {fmt(before, 'coverage', '.2f')} → "
                  f"{fmt(after, 'coverage', '.2f')} | {fmt(before, 'median_hi_lo', '.2f')} → "
                  f"{fmt(after, 'median_hi_lo', '.2f')} |", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"reps": args.reps, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
