"""How wide the joint model's CIs are against how far its answers miss, on one score_targets cell: the spread
of z = error / (CI half-width / 1.96) for the joint β (against the cell's true or pseudo-true β) and for a
bend answer's two slopes (against the truth's own broken line, fit_accuracy.truth_slopes). A CI
that is right has sd(z) near 1 and covers 95%; sd(z) over 1 is a CI too narrow, a mean z away from 0 a bias.
z reads the CI's half-width: where a CI is lopsided about its estimate (a hull of two CIs) read the coverage.
Sweeps as analyse() reads them (flat batch sizes read since 2026-12-06), bootstrap 0; a CI with an open end is left out,
so the coverage is over closed CIs (score_targets counts an open end as covering).
--omega W holds σ(B)'s exponent at W in every fit instead of estimating it (still one dof, whatever the
dof to spare; its SE 0, so no widening for it): the diagnostic behind surface._omega_widen, with W the
truth's −0.5 on the σ ∝ B^−½ cells.

    python bench/ci_spread.py "inside power_law 1.0 σ∝B^-½ asym 2 seed(s)" [--sweeps 200] [--omega -0.5]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
from fit_accuracy import truth_slopes  # noqa: E402
from score_targets import all_cells, draws, fmt  # noqa: E402
from truths_outside import slope  # noqa: E402

from lrscale.analysis import surface  # noqa: E402
from lrscale.analysis.fit import analyse  # noqa: E402


def hold_omega(omega):
    """σ(B)'s exponent fixed at omega in every fit (its SE 0: no widening for it)."""
    def fixed(model, p, allow=True):
        model.weigh(omega)
        return {"omega": omega, "omega_se": 0.0, "p_value": None, "used": True}
    surface._Model.sigma_trend = fixed


def z_of(value, ci, truth):
    """(z, covered) of one estimate with a two-sided CI, None where an end is open."""
    if ci is None or None in ci:
        return None
    return (value - truth) / ((ci[1] - ci[0]) / 2 / 1.96), bool(ci[0] <= truth <= ci[1])


def summary(pairs) -> dict:
    z = np.array([p[0] for p in pairs])
    return {"n": len(pairs), "sd_z": float(z.std(ddof=1)) if len(z) > 1 else None,
            "mean_z": float(z.mean()) if len(z) else None,
            "coverage": float(np.mean([p[1] for p in pairs])) if pairs else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cell", help="a score_targets cell id (python bench/score_targets.py --table lists them)")
    ap.add_argument("--sweeps", type=int, default=200)
    ap.add_argument("--omega", type=float, help="hold σ(B)'s exponent at this value")
    ap.add_argument("--out", default="bench/out/ci_spread.json")
    args = ap.parse_args()
    cells = all_cells()
    if args.cell not in cells:
        sys.exit(f"ci_spread: no cell {args.cell!r}; cells: {', '.join(cells)}")
    if args.omega is not None:
        hold_omega(args.omega)
    got, start = {"beta": [], "lower": [], "upper": []}, time.time()
    for sweep, lr_opt, seed in draws(*cells[args.cell], args.sweeps):
        j = analyse(sweep, bootstrap=0, seed=seed)["surface"]
        if j["beta"] is None:
            continue
        got["beta"].append(z_of(j["beta"], j["ci95"], slope(lr_opt)))
        if j["bend"]["bends"]:
            truth, slopes = truth_slopes(j, lr_opt), j["bend"]["slopes"]
            for key in ("lower", "upper"):
                got[key].append(z_of(slopes[key], slopes[key + "_ci95"], truth[key]))
    rows = {key: summary([p for p in pairs if p is not None]) for key, pairs in got.items()}
    print(f"{args.cell}, {args.sweeps} sweeps, ω {'estimated' if args.omega is None else f'held at {args.omega:g}'}"
          f" ({time.time() - start:.0f} s)")
    print("| estimate | n | sd(z) | mean z | coverage |\n|---|---|---|---|---|")
    for key, r in rows.items():
        print(f"| {key} | {r['n']} | {fmt(r['sd_z'], '.3f')} | {fmt(r['mean_z'], '+.3f')} | {fmt(r['coverage'], '.3f')} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"cell": args.cell, "sweeps": args.sweeps, "omega": args.omega,
                                          "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
