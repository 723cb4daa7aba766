"""Accuracy of the fit on synthetic sweeps with a known truth (issue 10's benchmark).

Phase-2 shape: 7 batch sizes 8..512, 7 lrs half a decade apart with a random grid phase (the same
grid for every B), Gaussian per-run noise σ, 1 or 2 seeds. Loss around the optimum d = log10 lr −
log10 lr_opt(B): symmetric c·d², or asymmetric c·d² + 2c·d³ above the optimum (a steeper wall,
same curvature at the optimum); runs more than 1.25 decades above the optimum diverge (NaN).
Truths: power law β ∈ {0.5, 0.667, 1}; McCandlish lr_max/(1 + B_noise/B), B_noise ∈ {32, 128};
surge lr_peak/(½(√(B_noise/B) + √(B/B_noise))), B_noise = 128; and a power law whose B=512 column
is flat (c = 0); and (issue 28.3) per-run noise that falls with B, σ(B) = σ·(B/64)^−½ (B = 8 is
8x as noisy as B = 512), so a σ pooled over B is wrong at both ends. Per cell: β error, coverage of both β CIs and of the per-B lr_opt CIs, the form
preferred, single-hypothesis verdicts, B_noise within 2x, the flat column's exclusion, and the β
CI half-width next to the previous method's (unweighted OLS t-CI on the same optima).
  python bench/fit_accuracy.py [--reps 200] [--boot 200] [--workers 2] [--noise all|constant|falling] [--out ...]
  python bench/fit_accuracy.py --table-from bench/results/fit_accuracy.json   # the README's table
"""

import argparse
import json
import re
import sys
import time
import zlib
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from lrscale.analysis.fit import Sweep, analyse, ols  # noqa: E402

BATCH = np.array([8, 16, 32, 64, 128, 256, 512])
CURVATURE = 0.2  # loss rise per decade² at the optimum
DIVERGE_ABOVE = 1.25  # decades above the optimum
BENDING = ("mccandlish", "surge", "undecided")


def truth(kind, param):
    """lr_opt(B) of a truth, scaled so its geometric mean over BATCH is 1e-3."""
    if kind == "power_law":
        lr = BATCH.astype(float) ** param
    elif kind == "mccandlish":
        lr = 1 / (1 + param / BATCH)
    else:
        lr = 1 / (0.5 * (np.sqrt(param / BATCH) + np.sqrt(BATCH / param)))
    return lr * 1e-3 / np.exp(np.mean(np.log(lr)))


def synthetic(lr_opt, shape, sigma, seeds, rng, flat_b=None, sigma_slope=0.0):
    """One sweep; σ(B) = sigma·(B/64)^sigma_slope (0: the same σ for every B)."""
    lrs = 10 ** (-4.5 + 0.5 * np.arange(7) + rng.uniform(-0.25, 0.25))  # one grid, random phase
    losses = {}
    for b, opt in zip(BATCH, lr_opt):
        d = np.log10(lrs) - np.log10(opt)
        c = 0.0 if b == flat_b else CURVATURE
        clean = 1.0 + 1.0 / np.sqrt(b) + c * d**2 + (2 * c * np.maximum(d, 0) ** 3 if shape == "asym" else 0)
        table = clean + rng.normal(0, sigma * (b / 64) ** sigma_slope, (seeds, len(lrs)))
        table[:, d > DIVERGE_ABOVE] = np.nan
        losses[int(b)] = table
    return Sweep([int(b) for b in BATCH], {int(b): lrs for b in BATCH}, losses, {int(b): None for b in BATCH},
                 "synthetic", list(range(seeds)))


def _single_claim(verdict):
    return re.search(r"(^|; )consistent with ", verdict) is not None  # not "inconsistent with every hypothesis"


def run_cell(spec):
    kind, param, shape, seeds, sigma, reps, boot, flat, slope = spec
    key = (kind, param, shape, seeds, flat) + ((slope,) if slope else ())  # the constant-σ cells' draws as before
    rng = np.random.default_rng(zlib.crc32(repr(key).encode()))  # reproducible
    lr_opt = truth(kind, param)
    log = {k: [] for k in ("err", "cov_t", "cov_b", "cov_b_lr", "pref", "single", "bn2", "flat_out", "hw", "hw_old")}
    for _ in range(reps):
        r = analyse(synthetic(lr_opt, shape, sigma, seeds, rng, 512 if flat else None, slope), bootstrap=boot,
                    seed=int(rng.integers(1 << 31)))
        by_b = {p["batch_size"]: p for p in r["per_batch"]}
        for b, t in zip(BATCH, lr_opt):
            ci = by_b[int(b)]["lr_opt_ci95"]
            if by_b[int(b)]["included"] and ci and not (flat and b == 512):
                log["cov_b_lr"].append(ci[0] <= t <= ci[1])
        if flat:
            log["flat_out"].append(not by_b[512]["included"])
        if r["beta"] is None:
            log["pref"].append("no beta")
            continue
        log["pref"].append(r["preferred_form"])
        log["single"].append(_single_claim(r["verdict"]))
        used = r["included_batch_sizes"]
        log["hw"].append((r["ci95_t"][1] - r["ci95_t"][0]) / 2)
        old = ols(used, [by_b[b]["lr_opt"] for b in used])
        log["hw_old"].append((old["ci95"][1] - old["ci95"][0]) / 2)
        if kind == "power_law":
            log["err"].append(r["beta"] - param)
            log["cov_t"].append(r["ci95_t"][0] <= param <= r["ci95_t"][1])
            if r["ci95_bootstrap"]:
                log["cov_b"].append(r["ci95_bootstrap"][0] <= param <= r["ci95_bootstrap"][1])
        else:
            bn = r["forms"][kind]["b_noise"]
            log["bn2"].append(param / 2 <= bn <= param * 2)
    return summarize(spec, log)


def summarize(spec, log):
    kind, param, shape, seeds, sigma, reps, boot, flat, slope = spec
    mean = lambda v: float(np.mean(v)) if len(v) else None  # noqa: E731
    prefs = log["pref"]
    right = "power_law" if kind == "power_law" else kind
    return {
        "truth": kind, "param": param, "shape": shape, "seeds": seeds, "sigma": sigma, "flat_column": flat,
        "sigma_slope": slope,
        "reps": reps, "mean_beta_error": mean(log["err"]), "coverage_t": mean(log["cov_t"]),
        "coverage_bootstrap": mean(log["cov_b"]), "coverage_lr_opt": mean(log["cov_b_lr"]),
        "right_form": mean([p == right for p in prefs]), "bending_preferred": mean([p in BENDING for p in prefs]),
        "wrong_bend": None if kind == "power_law" else mean([p in BENDING[:2] and p != kind for p in prefs]),
        "form_none": mean([p == "none" for p in prefs]), "single_hypothesis": mean(log["single"]),
        "b_noise_within_2x": mean(log["bn2"]), "flat_excluded": mean(log["flat_out"]),
        "ci_half_width": mean(log["hw"]), "ci_half_width_previous": mean(log["hw_old"]),
    }


def cells(reps, boot):
    out = []
    for shape in ("sym", "asym"):
        for seeds in (1, 2):
            for kind, param in [("power_law", 0.5), ("power_law", 0.667), ("power_law", 1.0), ("mccandlish", 32),
                                ("mccandlish", 128), ("surge", 128)]:
                out.append((kind, param, shape, seeds, 0.01, reps, boot, False, 0.0))
            out.append(("power_law", 0.5, shape, seeds, 0.01, reps, boot, True, 0.0))
    for shape in ("sym", "asym"):  # noise falling with B (issue 28.3)
        for seeds in (1, 2):
            for kind, param in [("power_law", 0.5), ("power_law", 1.0), ("mccandlish", 128)]:
                out.append((kind, param, shape, seeds, 0.01, reps, boot, False, -0.5))
    return out


def targets(rows):
    """Each target of issue 10, and whether it is met."""
    pl = [r for r in rows if r["truth"] == "power_law" and not r["flat_column"]]
    bend = [r for r in rows if r["truth"] != "power_law"]
    flat = [r for r in rows if r["flat_column"]]
    return {
        "power law: |mean β error| <= 0.02": all(abs(r["mean_beta_error"]) <= 0.02 for r in pl),
        "power law: β t-CI coverage 0.90-0.98": all(0.90 <= r["coverage_t"] <= 0.98 for r in pl),
        "power law: β bootstrap CI coverage 0.90-0.98": all(0.90 <= r["coverage_bootstrap"] <= 0.98 for r in pl),
        "power law: per-B lr_opt CI coverage 0.85-0.99": all(0.85 <= r["coverage_lr_opt"] <= 0.99 for r in pl),
        "power law: a bending form preferred <= 10%": all(r["bending_preferred"] <= 0.10 for r in pl),
        "power law: CI no wider than the previous method (within 2%)": all(
            r["ci_half_width"] <= 1.02 * r["ci_half_width_previous"] for r in pl),
        "bending: right form preferred >= 85%": all(r["right_form"] >= 0.85 for r in bend),
        "bending: single-hypothesis verdict <= 5%": all(r["single_hypothesis"] <= 0.05 for r in bend),
        "bending: B_noise within 2x >= 80%": all(r["b_noise_within_2x"] >= 0.80 for r in bend),
        "flat column excluded >= 90%": all(r["flat_excluded"] >= 0.90 for r in flat),
    }


def fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def markdown(rows) -> str:
    """The condensed table the README shows (one row per truth × shape × seeds; the flat-column runs last)."""
    head = ["truth", "curve", "seeds", "β error", "β cov. t", "β cov. boot", "lr_opt cov.", "right form",
            "other bend named", "bending pref.", "single-h verdict", "B_noise ≤2x", "CI half-width (prev.)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        flat = f" + flat B=512 (excluded {r['flat_excluded']:.2f})" if r["flat_column"] else ""
        falling = " σ∝B^-½" if r.get("sigma_slope") else ""
        truth = f"{r['truth']} {r['param']}{flat}{falling}"
        pct = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append("| " + " | ".join([
            truth, r["shape"], str(r["seeds"]), "-" if r["mean_beta_error"] is None else f"{r['mean_beta_error']:+.3f}",
            pct(r["coverage_t"]), pct(r["coverage_bootstrap"]), pct(r["coverage_lr_opt"]), pct(r["right_form"]),
            pct(r.get("wrong_bend")), pct(r["bending_preferred"]), pct(r["single_hypothesis"]), pct(r["b_noise_within_2x"]),
            f"{r['ci_half_width']:.3f} ({r['ci_half_width_previous']:.3f})"]) + " |")
    return "\n".join(lines)


def parse_args(out, boot=200, noise_option=False):
    """The options every accuracy benchmark takes (this one and adaptive_design.py)."""
    ap = argparse.ArgumentParser()
    if noise_option:
        ap.add_argument("--noise", choices=["all", "constant", "falling"], default="all",
                        help="the cells run: σ the same for every B, σ falling with B, or both")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--boot", type=int, default=boot, help="bootstrap replicates per analysis")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=out)
    ap.add_argument("--table-from", help="reprint the README table from a JSON this script wrote, and exit")
    return ap.parse_args()


def main():
    args = parse_args("bench/out/fit_accuracy.json", noise_option=True)
    if args.table_from:
        print(markdown(json.loads(Path(args.table_from).read_text())["rows"]))
        return
    t0 = time.time()
    with Pool(args.workers) as pool:
        chosen = [c for c in cells(args.reps, args.boot) if args.noise == "all" or (c[-1] != 0) == (args.noise == "falling")]
        rows = pool.map(run_cell, chosen)
    cols = ["truth", "param", "shape", "seeds", "flat_column", "sigma_slope", "mean_beta_error", "coverage_t", "coverage_bootstrap",
            "coverage_lr_opt", "right_form", "bending_preferred", "form_none", "single_hypothesis",
            "b_noise_within_2x", "flat_excluded", "ci_half_width", "ci_half_width_previous"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(fmt(r[c]) if isinstance(r[c], float) or r[c] is None else str(r[c]) for c in cols)
              + " |")
    met = targets(rows)
    for name, ok in met.items():
        print(f"{'MET    ' if ok else 'NOT MET'}  {name}")
    print(f"({time.time() - t0:.0f} s, {args.reps} replicates per cell, {args.boot} bootstrap resamples)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"reps": args.reps, "boot": args.boot, "targets": met, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
