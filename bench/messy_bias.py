"""Where the messy truth's mean β error comes from: the joint model's β on messy sweeps with one defect
left out at a time, paired on the same random numbers (bench/truths_outside.py, `messy`).

score_targets' messy cell with 2 seeds misses "|mean joint β error| ≤ 0.01" at +0.0104 [+0.003, +0.018].
The truth is the asymmetric in-family curve with β = 0.5, so the error comes from the defects: σ growing 4x
toward the wall, a per-(seed, B) offset, runs diverging at random from half a decade above the optimum to
the wall, 10% of runs absent, and the fixed Phase-2 1-3-10 grid. Each variant draws the same random numbers
as the full one (a defect left out draws them and does not use them), so the paired difference of each
sweep's error against the full variant's measures what that defect adds; the random grid phase (the fixed
grid moved by U(−¼, ¼) decade, drawn from a second stream) pairs too. Only the joint model is fitted
(lrscale.analysis.surface.fit_surface: the answer's β and the one the target scores). Its own draws, not
score_targets': sweep i uses default_rng(BASE_SEED + i) for every variant.

    python bench/messy_bias.py [--seeds 2] [--sweeps 200] [--workers 2] [--out bench/out/messy_bias.json]
"""

import argparse
import json
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
from score_targets import _mean_ci as mean_ci  # noqa: E402
from score_targets import ci_ends  # noqa: E402
from truths_outside import MESSY_DEFECTS, PHASE2_GRID, messy  # noqa: E402

from lrscale.analysis.surface import fit_surface  # noqa: E402

BETA = 0.5  # messy's true β
BASE_SEED = 23_000
VARIANTS = {  # name: (defects left out, whether the grid's phase is random)
    "every defect (the scored cell)": ((), False),
    "no divergence near the wall": (("diverge",), False),
    "σ constant (not growing to the wall)": (("growing_sd",), False),
    "no absent runs": (("absent",), False),
    "no per-(seed, B) offset": (("offset",), False),
    "random grid phase": ((), True),
    "no divergence near the wall, random grid phase": (("diverge",), True),
}
CHUNK = 20
assert all(set(without) <= set(MESSY_DEFECTS) for without, _ in VARIANTS.values())  # messy ignores other names


def sweep_of(i, seeds, without, phase):
    """Sweep i of a variant: messy on default_rng(BASE_SEED + i), its grid moved by a second stream's phase."""
    lrs = PHASE2_GRID * 10 ** np.random.default_rng((BASE_SEED, i)).uniform(-0.25, 0.25) if phase else PHASE2_GRID
    return messy(np.random.default_rng(BASE_SEED + i), seeds, without, lrs)[0]


def run_chunk(job):
    """(variant, [(i, error, covered)]) for sweeps [start, stop) with a joint β."""
    name, seeds, start, stop = job
    without, phase = VARIANTS[name]
    out = []
    for i in range(start, stop):
        r = fit_surface(sweep_of(i, seeds, without, phase))
        if r["beta"] is not None:
            lo, hi = ci_ends(r["ci95"])
            out.append((i, r["beta"] - BETA, bool(lo <= BETA <= hi)))
    return name, out


def _mean_ci(xs) -> list:
    """The mean and its t 95% interval (score_targets' interval)."""
    return [float(np.mean(xs)), *mean_ci(xs)]


def summarize(results) -> list:
    """Per variant: sweeps with a joint β, mean error, coverage and the paired difference from the full one."""
    full = {i: e for i, e, _ in results[next(iter(VARIANTS))]}
    rows = []
    for name in VARIANTS:
        recs = results.get(name, [])
        paired = [e - full[i] for i, e, _ in recs if i in full]
        rows.append({"variant": name, "n": len(recs), "mean_error": _mean_ci([e for _, e, _ in recs]),
                     "coverage": float(np.mean([c for *_, c in recs])), "n_paired": len(paired),
                     "paired_difference": _mean_ci(paired) if name != next(iter(VARIANTS)) else None})
    return rows


def markdown(rows, seeds, sweeps) -> str:
    ci = lambda v: f"{v[0]:+.4f} [{v[1]:+.4f}, {v[2]:+.4f}]"  # noqa: E731
    lines = ["| variant | sweeps with a joint β | mean β error [95%] | coverage | paired sweeps | paired difference "
             "from every defect [95%] |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['n']} | {ci(r['mean_error'])} | {r['coverage']:.3f} | {r['n_paired']} | "
              f"{'—' if r['paired_difference'] is None else ci(r['paired_difference'])} |" for r in rows]
    return "\n".join(lines) + f"\n({seeds} seed(s), {sweeps} sweeps a variant, β = {BETA})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--sweeps", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench/out/messy_bias.json")
    args = ap.parse_args()
    jobs = [(name, args.seeds, lo, min(lo + CHUNK, args.sweeps)) for lo in range(0, args.sweeps, CHUNK)
            for name in VARIANTS]
    results = {}
    with Pool(args.workers) as pool:
        for name, recs in pool.imap_unordered(run_chunk, jobs):
            results.setdefault(name, []).extend(recs)
    rows = summarize(results)
    print(markdown(rows, args.seeds, args.sweeps))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seeds": args.seeds, "sweeps": args.sweeps, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
