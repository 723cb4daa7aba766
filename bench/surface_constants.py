"""What the joint model's tuning constants cost (issue 23.3): WINDOW_DECADES and K_MAX of
lrscale.analysis.surface, each varied alone around its value, on every out-of-family truth
(bench/truths_outside.py) and two inside ones, 1 and 2 seeds.

The values in use were chosen on quick runs of the rising wall and the narrowing basin only; the
NQM-SGD, messy and plateau-kink truths and the inside ones were not looked at, so their rows show
what the choice costs where it was not tuned. Per cell: the joint β's CI coverage of the (pseudo-)true
β, its median half-width, the mean error, and how often the bend test fires (on a power law: a false
alarm). Only the joint fit runs (no bootstrap, no per-B forms).

    python bench/surface_constants.py [--reps 60] [--out bench/results/surface_constants.json]
"""

import argparse
import sys
import time
import zlib
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fit_accuracy import BATCH, synthetic, truth  # noqa: E402
from truths_outside import TRUTHS, slope  # noqa: E402

from lrscale.analysis import surface  # noqa: E402
from lrscale.fileio import atomic_write_json  # noqa: E402

IN_USE = {"WINDOW_DECADES": surface.WINDOW_DECADES, "K_MAX": surface.K_MAX}
SETTINGS = [("WINDOW_DECADES", v) for v in (0.75, 1.0, 1.5)] + [("K_MAX", v) for v in (10.0, 100.0)]


def _draw(name, seeds, rng):
    """A sweep and its true lr_opt per B: an outside truth by name, or an inside power law 0.5."""
    if name in TRUTHS:
        return TRUTHS[name](rng, seeds)
    lr_opt = truth("power_law", 0.5)
    return synthetic(lr_opt, name.split("_")[-1], 0.01, seeds, rng), lr_opt


def run(spec):
    (constant, value), name, seeds, reps = spec
    for other, in_use in IN_USE.items():  # a worker runs many settings: only this one differs
        setattr(surface, other, in_use)
    setattr(surface, constant, value)
    rng = np.random.default_rng(zlib.crc32(repr((name, seeds)).encode()))  # the same sweeps for every setting
    cov, width, err, bend = [], [], [], []
    for _ in range(reps):
        sweep, lr_opt = _draw(name, seeds, rng)
        beta_true = slope(lr_opt) if name in TRUTHS else 0.5
        j = surface.fit_surface(sweep)
        if j["beta"] is None:
            continue
        lo, hi = (-np.inf if j["ci95"][0] is None else j["ci95"][0]), (np.inf if j["ci95"][1] is None else j["ci95"][1])
        cov.append(lo <= beta_true <= hi)
        width.append((hi - lo) / 2)
        err.append(j["beta"] - beta_true)
        bend.append(j["bend"]["bends"])
    stat = lambda f, v: float(f(v)) if v else None  # noqa: E731  (no fit at all: too few runs in the window)
    return {"constant": constant, "value": value, "truth": name, "seeds": seeds, "fits": len(cov),
            "coverage": stat(np.mean, cov), "half_width": stat(np.median, width), "mean_error": stat(np.mean, err),
            "bend_found": stat(np.mean, bend)}


def markdown(rows, reps) -> str:
    cells = sorted({(r["truth"], r["seeds"]) for r in rows}, key=lambda c: (list(NAMES).index(c[0]), c[1]))
    settings = [f"{c}={v:g}" for c, v in SETTINGS]
    head = ["truth", "seeds"] + settings
    lines = ["coverage / median half-width / bend found, per setting (in use: WINDOW_DECADES=1, K_MAX=30)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    at = {(r["constant"], r["value"], r["truth"], r["seeds"]): r for r in rows}
    for name, seeds in cells:
        parts = [name, str(seeds)]
        for c, v in SETTINGS:
            r = at[(c, v, name, seeds)]
            parts.append("no fit" if not r["fits"] else
                         f"{r['coverage']:.2f} / {r['half_width']:.3f} / {r['bend_found']:.2f}"
                         + ("" if r["fits"] == reps else f" ({r['fits']} fits)"))
        lines.append("| " + " | ".join(parts) + " |")
    return "\n".join(lines)


NAMES = {**{n: n for n in TRUTHS}, "inside_sym": "power law 0.5, symmetric", "inside_asym": "power law 0.5, asymmetric"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench/out/surface_constants.json")
    args = ap.parse_args()
    assert len(BATCH) == 7
    t0 = time.time()
    specs = [(s, name, seeds, args.reps) for s in SETTINGS for name in NAMES for seeds in (1, 2)]
    with Pool(args.workers) as pool:
        rows = pool.map(run, specs)
    print(markdown(rows, args.reps))
    print(f"({time.time() - t0:.0f} s, {args.reps} sweeps per cell)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.out), {"reps": args.reps, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
