"""Why the verdict declines ("not decided"), and what each form gate costs (issue 23).

The verdict tests no hypothesis when lr_opt(B) is not a power law by every account: a bending form the
joint model prefers (`untested = form`), its bend test (`bend`), a stability edge, a fall, or a
cross-check that disagrees. Until 2026-12-05 the form account was the per-B optima's form test
(forms.py); with one seed and σ ∝ B^-½ it took the small batch sizes' noise for a bend and left one inside
cell "not decided" in 0.24 of sweeps. This judges, on the same draws as bench/fit_accuracy.py (its cells,
cell keys and rng; bootstrap 0, so only the bootstrap CI, not the verdict, differs from its archives), the
verdict under three gates, every other reason kept in order: `joint` (now: the joint model's form
comparison, surface.fit_forms), `per_b` (before: the per-B optima's preferred form) and `none`; how often
each declines, rules the truth out, or names a wrong single hypothesis, and the reasons behind `joint`.

    python bench/decline_reasons.py [--reps 50] [--reps-outside 100] [--out bench/out/decline_reasons.json]
"""

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fit_accuracy import cells, inside_draws, judge, outside_draws, pseudo_true_beta  # noqa: E402
from surface_constants import run_cells  # noqa: E402
from truths_outside import TRUTHS  # noqa: E402

from lrscale.analysis.fit import analyse, untested_reasons  # noqa: E402

GATES = ("per_b", "joint", "none")


def _draws(cell, reps):
    """fit_accuracy's draws for this cell: (truth, seeds) outside the fit's family, else (kind, param,
    shape, seeds, flat, σ slope) at its σ of 0.01."""
    if len(cell) == 2:
        return outside_draws(*cell, reps)
    kind, param, shape, seeds, flat, slope = cell
    return inside_draws(kind, param, shape, seeds, 0.01, reps, flat, slope)


def _gated(r, gate) -> dict:
    """The result with `gate` as the verdict's form account (fit.untested_reasons, its `form` replaced)."""
    a = r["answer"]
    if a["estimator"] != "surface":
        return r
    bends_form = {"joint": r["surface"]["forms"]["preferred"] != "none",
                  "per_b": r["beta"] is not None and r["preferred_form"] != "power_law", "none": False}[gate]
    reasons = [(why, bends_form if why == "form" else holds) for why, holds in untested_reasons(r, a["disagreeing"])]
    return {**r, "answer": {**a, "untested": next((why for why, holds in reasons if holds), None)}}


def run(spec):
    cell, reps = spec
    reasons, judged = collections.Counter(), {g: [] for g in GATES}
    for sweep, lr_opt, seed in _draws(cell, reps):
        r = analyse(sweep, bootstrap=0, seed=seed)
        beta_true = cell[1] if cell[0] == "power_law" else pseudo_true_beta(lr_opt)
        surface_answers = r["answer"]["estimator"] == "surface"
        reasons[str(r["answer"]["untested"]) if surface_answers else "no joint fit (per-B answer)"] += 1
        for g in GATES:
            judged[g].append(judge(_gated(r, g), beta_true, True, lr_opt))
    share = lambda v, k: float(np.mean([j[k] for j in v]))  # noqa: E731
    return {"cell": " ".join(map(str, cell)), "reps": reps, "reasons": {k: v / reps for k, v in reasons.items()},
            **{f"{k}_{g}": share(judged[g], k) for g in GATES for k in ("declined", "ruled_out", "wrong_single")}}


def markdown(rows) -> str:
    head = ["cell", "sweeps", "declined because (joint gate, share of sweeps)", "declined per-B → joint (no gate)",
            "truth ruled out per-B → joint", "wrong single h. per-B → joint (no gate)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        why = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["reasons"].items(), key=lambda kv: -kv[1]) if k != "None")
        pair = lambda k: f"{r[k + '_per_b']:.2f} → {r[k + '_joint']:.2f}"  # noqa: E731
        out.append(f"| {r['cell']} | {r['reps']} | {why or '-'} | {pair('declined')} ({r['declined_none']:.2f}) | "
                   f"{pair('ruled_out')} | {pair('wrong_single')} ({r['wrong_single_none']:.2f}) |")
    return "\n".join(out)


def all_cells(reps, reps_outside):
    """fit_accuracy's inside cells (σ 0.01) and every out-of-family truth with 1 and 2 seeds."""
    inside = [((kind, param, shape, seeds, flat, slope), reps)
              for kind, param, shape, seeds, _, _, _, flat, slope in cells(reps, 0)]
    return inside + [((name, seeds), reps_outside) for name in TRUTHS for seeds in (1, 2)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=50, help="sweeps per inside cell")
    ap.add_argument("--reps-outside", type=int, default=100, help="sweeps per out-of-family cell")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench/out/decline_reasons.json")
    args = ap.parse_args()
    run_cells(run, all_cells(args.reps, args.reps_outside), args, markdown, time.time())


if __name__ == "__main__":
    main()
