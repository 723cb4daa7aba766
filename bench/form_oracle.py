"""How often can ANY form choice made from per-B optima be right? An oracle bound (issue 10).

For each bending truth of fit_accuracy (McCandlish B_noise 32 / 128, surge 128; sym / asym curves;
1 / 2 seeds; σ = 0.01) it measures the real estimator's per-B scatter: the SD over `--reps` sweeps
of ln lr_opt − ln truth at each B, next to the across-B SE the fit reports. Then it hands an oracle
per-B optima drawn exactly from the truth with that scatter (Gaussian, independent, the SDs known
exactly: better than any real sweep gives) and counts how often the right form wins
  lrscale's rule   forms.compare with the true SDs (power law unless a bend lowers χ² by 4)
  min χ²           the lowest χ² of the three forms, no preference for the power law.
Min χ² is about the most a two-parameter form choice can get out of those per-B estimates: when
it stays under a target, no choice rule reaches the target at that noise level.
  python bench/form_oracle.py [--reps 150] [--draws 300] [--workers 2] [--out bench/out/form_oracle.json]
"""

import argparse
import json
import sys
import zlib
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_accuracy import BATCH, synthetic, truth  # noqa: E402

from lrscale.analysis import forms  # noqa: E402  (fit_accuracy put src/ on the path)
from lrscale.analysis.fit import analyse  # noqa: E402


def scatter(kind, param, shape, seeds, reps, rng):
    """(empirical SD of ln lr_opt per B, mean reported across-B SE in ln) over `reps` sweeps."""
    lnt, errors, reported = np.log(truth(kind, param)), [], []
    for _ in range(reps):
        rows = analyse(synthetic(truth(kind, param), shape, 0.01, seeds, rng), bootstrap=0)["per_batch"]
        if all(r["lr_opt"] and r["lr_opt_se_across_b_log10"] for r in rows):
            errors.append(np.log([r["lr_opt"] for r in rows]) - lnt)
            reported.append([r["lr_opt_se_across_b_log10"] * np.log(10) for r in rows])
    return np.std(errors, axis=0), np.mean(reported, axis=0)


def cell(spec):
    kind, param, shape, seeds, reps, draws = spec
    rng = np.random.default_rng(zlib.crc32(repr(spec).encode()))
    sd, reported = scatter(kind, param, shape, seeds, reps, rng)
    lnt = np.log(truth(kind, param))
    rule = min_chi2 = 0
    for _ in range(draws):
        c = forms.compare(BATCH, np.exp(lnt + rng.normal(0, sd)), sd)
        rule += c["preferred_form"] == kind
        min_chi2 += min(c["fits"], key=lambda f: c["fits"][f]["chi2"]) == kind
    return {"truth": kind, "param": param, "shape": shape, "seeds": seeds, "emp_sd_ln": float(np.mean(sd)),
            "reported_se_ln": float(np.mean(reported)), "oracle_rule": rule / draws, "oracle_min_chi2": min_chi2 / draws}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=150)
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench/out/form_oracle.json")
    args = ap.parse_args()
    specs = [(k, p, sh, s, args.reps, args.draws) for sh in ("sym", "asym") for s in (1, 2)
             for k, p in (("mccandlish", 32), ("mccandlish", 128), ("surge", 128))]
    with Pool(args.workers) as pool:
        rows = pool.map(cell, specs)
    lines = ["| truth | param | shape | seeds | per-B SD of ln lr_opt | reported across-B SE | right form, lrscale's rule "
             "(oracle) | right form, min χ² (oracle) |", "|" + "---|" * 8]
    lines += [f"| {r['truth']} | {r['param']} | {r['shape']} | {r['seeds']} | {r['emp_sd_ln']:.3f} | "
              f"{r['reported_se_ln']:.3f} | {r['oracle_rule']:.3f} | {r['oracle_min_chi2']:.3f} |" for r in rows]
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"reps": args.reps, "draws": args.draws, "rows": rows}, indent=1))
    out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
