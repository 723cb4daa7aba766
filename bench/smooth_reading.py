"""Bend answers read about a quadratic in log B (surface._smooth), on and off, on the same sweeps.

Where the bend test fires, the answer is the broken line's two slopes with CIs widened by lack of fit and
the delete-one-B jackknife. surface._smooth reads their scatter about a quadratic in log B where that
fits each B's own lr_opt closer than the broken line; this script prices that choice where it could
narrow a CI wrongly. Truths (7 B, 8..512, fit_accuracy's random-phase grid, σ = 0.01, 1 and 2 seeds):
- kinked_scatter: lr_opt a broken line at the knot (slope 0.8 to B = 64, 0.4 above) plus a per-B offset
  N(0, 0.02 decade) drawn per sweep, the same for every seed: the quadratic fits closer by chance in some
  sweeps, and the CIs are scored against the line WITHOUT the offsets (the offsets count as error);
- mccandlish: lr_max / (1 + 128/B), asymmetric bowl: the in-family smooth bend it was built for;
- nqm_sgd: bench/truths_outside.py's SGD on a noisy quadratic (a smooth bend, B = 512's vertex set apart).
Scored per sweep where the bend fires: each slope's CI against the truth's broken line (least squares
through the true log lr_opt, knot at B = 64), both CIs' median half-width, and how often the quadratic
was read. Only surface.fit_surface runs (not the verdict).
  python bench/smooth_reading.py [--reps 100] [--out bench/results/smooth_reading.json]
"""

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from lrscale.analysis import surface  # noqa: E402
from fit_accuracy import synthetic, truth  # noqa: E402
from truths_outside import BATCH, geo_centre, nqm_sgd  # noqa: E402

KNOT = 64


def kinked_line() -> np.ndarray:
    """lr_opt a broken line in log-log at the knot: slope 0.8 below B = 64, 0.4 above."""
    l10 = np.log10(BATCH / KNOT)
    return geo_centre(10 ** (0.8 * np.minimum(l10, 0) + 0.4 * np.maximum(l10, 0)))


def kinked_scatter(rng, seeds):
    line = kinked_line()
    offset = 10 ** rng.normal(0, 0.02, len(BATCH))
    return synthetic(line * offset, "sym", 0.01, seeds, rng), line


def mccandlish(rng, seeds):
    lr_opt = truth("mccandlish", 128)
    return synthetic(lr_opt, "asym", 0.01, seeds, rng), lr_opt


TRUTHS = {"kinked_scatter": kinked_scatter, "mccandlish": mccandlish, "nqm_sgd": nqm_sgd}


def broken_line(lr_opt) -> np.ndarray:
    """The truth's least-squares broken line's slopes (below, above the knot) through its log lr_opt."""
    l10 = np.log10(BATCH.astype(float))
    design = np.column_stack([np.ones(len(l10)), l10, np.maximum(l10 - np.log10(KNOT), 0)])
    coef = np.linalg.lstsq(design, np.log10(lr_opt), rcond=None)[0]
    return np.array([coef[1], coef[1] + coef[2]])


def score(sweep, target) -> dict | None:
    """One reading of one sweep: None where the bend does not fire, else per slope whether its CI holds the
    target and its half-width, and whether the quadratic was read."""
    j = surface.fit_surface(sweep)
    if j["beta"] is None or not j["bend"]["bends"] or j["batch_sizes"] != [int(b) for b in BATCH]:
        return None
    slopes = j["bend"]["slopes"]
    cis = [slopes[k + "_ci95"] for k in ("lower", "upper")]
    hits = [lo is not None and hi is not None and lo <= t <= hi for (lo, hi), t in zip(cis, target)]
    half = [np.inf if None in ci else (ci[1] - ci[0]) / 2 for ci in cis]
    return {"hits": hits, "half": half, "smooth": j["bend"]["lack_of_fit"].get("s2_smooth") is not None}


def run_cell(name, seeds, reps) -> dict:
    rng = np.random.default_rng(zlib.crc32(repr(("smooth_reading", name, seeds)).encode()))
    on, off = [], []
    reading = surface._smooth
    for _ in range(reps):
        sweep, lr_opt = TRUTHS[name](rng, seeds)
        target = broken_line(lr_opt)
        surface._smooth = reading
        a = score(sweep, target)
        surface._smooth = lambda model, free, lof: surface._Smooth(np.zeros(len(model.used)), None)
        b = score(sweep, target)
        surface._smooth = reading
        if a is not None and b is not None:
            on.append(a)
            off.append(b)
    out = {"truth": name, "seeds": seeds, "reps": reps, "bend_answers": len(on), "quadratic_read": None}
    if on:
        out["quadratic_read"] = float(np.mean([r["smooth"] for r in on]))
        for key, rows in (("on", on), ("off", off)):
            out[f"coverage_{key}"] = float(np.mean([h for r in rows for h in r["hits"]]))
            out[f"either_missed_{key}"] = float(np.mean([not all(r["hits"]) for r in rows]))
            out[f"half_width_{key}"] = float(np.median([h for r in rows for h in r["half"]]))
    return out


def markdown(rows) -> str:
    head = ("| truth | seeds | bend answers | quadratic read | slope CI coverage off → on | either missed off → on "
            "| median half-width off → on |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["bend_answers"]:
            lines.append(f"| {r['truth']} | {r['seeds']} | 0 | - | - | - | - |")
            continue
        lines.append(f"| {r['truth']} | {r['seeds']} | {r['bend_answers']} | {r['quadratic_read']:.2f} | "
                     f"{r['coverage_off']:.3f} → {r['coverage_on']:.3f} | {r['either_missed_off']:.2f} → "
                     f"{r['either_missed_on']:.2f} | {r['half_width_off']:.3f} → {r['half_width_on']:.3f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--truths", default=",".join(TRUTHS))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "smooth_reading.json"))
    args = ap.parse_args()
    start = time.time()
    rows = [run_cell(name, seeds, args.reps) for name in args.truths.split(",") for seeds in (1, 2)]
    table = markdown(rows)
    print(table)
    print(f"{time.time() - start:.0f} s")
    Path(args.out).write_text(json.dumps({"reps": args.reps, "rows": rows, "wall_s": time.time() - start}, indent=1))


if __name__ == "__main__":
    main()
