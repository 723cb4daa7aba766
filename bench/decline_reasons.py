"""Why the verdict declines ("not decided"), and what dropping its per-B form gate would change (issue 23).

The verdict tests no hypothesis when lr_opt(B) is not a power law "by every account": the per-B optima's
preferred form (`untested = form`), the joint model's bend test (`bend`), a stability edge, a fall, or a
cross-check that disagrees. On one cell (σ ∝ B^-½, symmetric, one seed, β = 0.5) "not decided" is 0.24,
over the 20% target; this counts each reason on the same draws as bench/fit_accuracy.py (its cell keys,
its rng; bootstrap 0, so only the bootstrap CI, not the verdict, differs from its archive) and judges the
verdict the gate would leave (the joint bend test, the stability edge and the cross-checks still decline):
how often it would decline, rule the truth out, or name a wrong single hypothesis.

    python bench/decline_reasons.py [--reps 100] [--out bench/out/decline_reasons.json]
"""

import argparse
import collections
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fit_accuracy import judge, pseudo_true_beta, synthetic, truth  # noqa: E402
from surface_constants import run_cells  # noqa: E402
from truths_outside import TRUTHS  # noqa: E402

from lrscale.analysis.fit import analyse  # noqa: E402

INSIDE = [("power_law", 0.5, "sym", 1, -0.5), ("power_law", 0.5, "sym", 1, 0.0), ("power_law", 1.0, "asym", 1, -0.5),
          ("mccandlish", 128, "sym", 1, -0.5), ("mccandlish", 32, "sym", 1, 0.0), ("surge", 128, "sym", 1, 0.0)]
OUTSIDE = [("plateau_kink", 1), ("plateau_kink", 2), ("nqm_sgd", 1), ("nqm_sgd", 2), ("cliff_edge", 2),
           ("rising_wall", 2)]


def _draws(cell, reps):
    """(sweep, true lr_opt, seed for analyse) as fit_accuracy draws them for this cell."""
    if len(cell) == 2:
        name, seeds = cell
        rng = np.random.default_rng(zlib.crc32(repr(("outside", name, seeds)).encode()))
        for _ in range(reps):
            sweep, lr_opt = TRUTHS[name](rng, seeds)
            yield sweep, lr_opt, int(rng.integers(1 << 31))
        return
    kind, param, shape, seeds, slope = cell
    key = (kind, param, shape, seeds, False) + ((slope,) if slope else ())
    rng = np.random.default_rng(zlib.crc32(repr(key).encode()))
    lr_opt = truth(kind, param)
    for _ in range(reps):
        yield synthetic(lr_opt, shape, 0.01, seeds, rng, None, slope), lr_opt, int(rng.integers(1 << 31))


def _without_form_gate(r) -> dict:
    """The result with the per-B form gate removed from the verdict's reasons (the others kept, in order)."""
    a, joint = r["answer"], r["surface"]
    untested = a["untested"]
    if untested == "form":
        untested = "bend" if joint["bend"]["bends"] else ("estimator_dependent" if a["disagreeing"] else None)
    return {**r, "answer": {**a, "untested": untested}}


def run(spec):
    cell, reps = spec
    reasons, now, gateless = collections.Counter(), [], []
    for sweep, lr_opt, seed in _draws(cell, reps):
        r = analyse(sweep, bootstrap=0, seed=seed)
        beta_true = cell[1] if cell[0] == "power_law" else pseudo_true_beta(lr_opt)
        reasons[str(r["answer"]["untested"])] += 1
        now.append(judge(r, beta_true, True, lr_opt))
        gateless.append(judge(_without_form_gate(r), beta_true, True, lr_opt))
    share = lambda v, k: float(np.mean([j[k] for j in v]))  # noqa: E731
    return {"cell": " ".join(map(str, cell)), "reps": reps, "reasons": {k: v / reps for k, v in reasons.items()},
            **{f"{k}_{name}": share(v, k) for name, v in (("now", now), ("without_form_gate", gateless))
               for k in ("declined", "ruled_out", "wrong_single")}}


def markdown(rows) -> str:
    head = ["cell", "declined because (share of sweeps)", "declined now → without the form gate",
            "truth ruled out", "wrong single h."]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        why = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["reasons"].items(), key=lambda kv: -kv[1]) if k != "None")
        out.append(f"| {r['cell']} | {why or '-'} | " + " | ".join(
            f"{r[k + '_now']:.2f} → {r[k + '_without_form_gate']:.2f}" for k in ("declined", "ruled_out", "wrong_single"))
            + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench/out/decline_reasons.json")
    args = ap.parse_args()
    run_cells(run, [(c, args.reps) for c in INSIDE + OUTSIDE], args, markdown, time.time())


if __name__ == "__main__":
    main()
