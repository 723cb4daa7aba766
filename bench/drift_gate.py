"""Whether the loss shape's drift with log B could be dropped where the data do not ask for it: the joint
model's β with its wall steepnesses drifting (today's surface: k± linear in log B) and held constant across
B, and the F test of the drift between them (2 dof, the power law's unweighted fits), on the same sweeps.
A gate "drop the drift where that test's p > P" is then scored at several P from the stored pairs.

The drift costs β's CI a factor 2-3 in width where the shape is the same at every B (bench/README.md,
"messy's mean error"), and leaving it out rules the truth out where the shape changes (rising wall, narrowing
basin). The question is whether the test sees a drift before β does, judged on two truths built for it,
whose shape drifts a little (a power law, β = 0.5, the asymmetric in-family bowl, grid and noise as
truths_outside's rising wall):
  gentle_wall   the wall's cubic term 0.3 at B = 8 rising linearly in log2 B to 0.5 at B = 512 (the rising
                wall's goes 0 -> 0.8);
  gentle_basin  the bowl's width w_B = (B/8)^0.04 (the narrowing basin's exponent -0.12, here 0.04 and the
                other way),
and on score_targets' cells (their draws). The constant shape is `surface._Model` with its log B coordinate
t held at 0 (k± at the smallest B apply at every B); its dof still count four wall steepnesses (two spare
of the 40-90: a slightly wider CI, conservative for the gate). Coverage is over the sweeps with a closed joint β
CI (conditional on an answer; not score_targets' "ruled out", which counts the verdict's declines).

    python bench/drift_gate.py [--sweeps 150] [--workers 2] [--out bench/out/drift_gate.json]
"""

import argparse
import contextlib
import json
import sys
import zlib
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
import truths_outside as to  # noqa: E402
from score_targets import all_cells, draws  # noqa: E402

from lrscale.analysis import surface  # noqa: E402

SCORED = ["outside rising_wall", "outside narrowing_basin", "outside messy", "outside ragged_edge",
          "inside power_law 0.5 sym", "inside power_law 0.5 asym", "inside power_law 1.0 asym"]
GATES = (1.0, 0.2, 0.05, 0.01, 0.0)  # drop the drift where p > P: 1 keeps it always (today), 0 never
CHUNK = 10


def _gentle(rng, seeds, coordinate, wall_term):
    """A power law (β = 0.5) in the asymmetric in-family bowl on truths_outside's grid and noise: loss = 1 + B^-½
    + 0.2·z² + wall_term(j)·max(z, 0)³ + N(0, σ), z = coordinate(d, b) for d = log10(lr / lr_opt), NaN past the wall."""
    lr_opt, lrs = to._power_law(0.5), to.random_phase_grid(rng)
    losses = {}
    for j, (b, opt) in enumerate(zip(to.BATCH, lr_opt)):
        z = coordinate(np.log10(lrs / opt), b)
        table = 1 + b**-0.5 + 0.2 * z**2 + wall_term(j) * np.maximum(z, 0) ** 3 + rng.normal(0, to.SIGMA, (seeds, 7))
        table[:, z > to.WALL] = np.nan
        losses[int(b)] = table
    return to.make_sweep(lrs, losses), lr_opt


def gentle_wall(rng, seeds):
    return _gentle(rng, seeds, lambda d, b: d, lambda j: 0.3 + 0.2 * j / (len(to.BATCH) - 1))


def gentle_basin(rng, seeds):
    return _gentle(rng, seeds, lambda d, b: d / (b / 8) ** 0.04, lambda j: 0.4)


GENTLE = {"gentle_wall": gentle_wall, "gentle_basin": gentle_basin}


@contextlib.contextmanager
def constant_shape():
    """surface's models built inside hold k± at their smallest-B values at every B."""
    init = surface._Model.__init__

    def held(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.t = np.zeros_like(self.t)

    surface._Model.__init__ = held
    try:
        yield
    finally:
        surface._Model.__init__ = init


def drift_p(sweep) -> float | None:
    """The F test (2, dof) of the shape's drift: the power law's RSS with k± constant against drifting."""
    read = surface._points(sweep)
    dof = len(read.pts) - (2 + surface.N_SHAPE + 2 * len(read.used))
    if len(read.used) < surface.MIN_BATCHES or dof < 3:
        return None
    b_ref, rss = float(np.exp(np.mean(np.log(read.used)))), []
    for ctx in (contextlib.nullcontext, constant_shape):
        with ctx():
            rss.append(surface._best_fit(surface._Model(read.used, read.pts, b_ref, read.edges, read.next_to_edge))[1])
    f = max(rss[1] - rss[0], 0.0) / 2 / (rss[0] / dof)
    return float(stats.f.sf(f, 2, dof))


def beta_ci(sweep) -> list | None:
    r = surface.fit_surface(sweep)
    return None if r.get("beta") is None or None in r["ci95"] else [r["beta"], *r["ci95"]]


def sweeps(cell, start, stop):
    """Sweeps [start, stop) of a cell with their true lr_opt: score_targets' draws, or a gentle truth on its own seeds."""
    scored = all_cells().get(cell)
    if scored:
        return [(s, lr_opt) for s, lr_opt, _ in draws(*scored, stop)][start:stop]
    kind, seeds = cell.split()
    return [GENTLE[kind](np.random.default_rng((777, zlib.crc32(kind.encode()), int(seeds), i)), int(seeds))
            for i in range(start, stop)]


def run_chunk(job):
    cell, start, stop = job
    out = []
    for i, (sweep, _) in zip(range(start, stop), sweeps(cell, start, stop)):
        drift = beta_ci(sweep)
        with constant_shape():
            held = beta_ci(sweep)
        out.append({"cell": cell, "i": i, "p": drift_p(sweep), "drift": drift, "constant": held})
    return out


def truth(cell) -> float:
    """The cell's true β: the slope of its truth's lr_opt (every truth scored here is a power law)."""
    return to.slope(sweeps(cell, 0, 1)[0][1])


def score(records, beta, gate) -> dict:
    """Coverage, median half-width, mean error and the share dropped for one gate on one cell's records."""
    picked = []
    for r in records:
        drop = r["p"] is not None and r["p"] > gate
        fit = r["constant"] if drop else r["drift"]
        if fit is not None:
            picked.append((fit, drop))
    if not picked:
        return {"n": 0}
    return {"n": len(picked), "coverage": float(np.mean([lo <= beta <= hi for (_, lo, hi), _ in picked])),
            "half_width": float(np.median([(hi - lo) / 2 for (_, lo, hi), _ in picked])),
            "mean_error": float(np.mean([b - beta for (b, _, _), _ in picked])),
            "dropped": float(np.mean([d for _, d in picked]))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=150)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench/out/drift_gate.json")
    args = ap.parse_args()
    cells = [f"{k} {s}" for k in GENTLE for s in (1, 2)]
    cells += [c for c in all_cells() for prefix in SCORED if c.startswith(prefix + " ") and "σ" not in c
              and "flat" not in c]
    jobs = [(c, lo, min(lo + CHUNK, args.sweeps)) for lo in range(0, args.sweeps, CHUNK) for c in cells]
    records = []
    with Pool(args.workers) as pool:
        for chunk in pool.imap_unordered(run_chunk, jobs):
            records += chunk
    rows = {c: {str(g): score([r for r in records if r["cell"] == c], truth(c), g) for g in GATES} for c in cells}
    print("| cell | " + " | ".join(f"P = {g:g}: coverage / half-width / mean error / dropped" for g in GATES) + " |")
    print("|---|" + "---|" * len(GATES))
    for c, by_gate in rows.items():
        print(f"| {c} | " + " | ".join("—" if not s["n"] else f"{s['coverage']:.3f} / {s['half_width']:.3f} / "
                                        f"{s['mean_error']:+.4f} / {s['dropped']:.2f}" for s in by_gate.values()) + " |")
    print(f"({args.sweeps} sweeps a cell; the drift dropped where its F test's p > P; P = 1 is today's surface)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"sweeps": args.sweeps, "rows": rows, "records": records}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
