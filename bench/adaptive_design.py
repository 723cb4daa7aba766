"""Adaptive rounds vs the fixed grid at the same number of runs (issue 11's benchmark).

Synthetic Phase-2-shaped sweeps (bench/fit_accuracy.py's surfaces: 7 B from 8 to 512, loss
c·d² (+ 2c·d³ above the optimum for `asym`), runs > 1.25 decades above the optimum diverge,
Gaussian noise σ per run, a random grid phase), power-law truths β ∈ {0.5, 0.667, 1}. Both designs
spend 98 runs:
  fixed     the 7-lr grid × 2 seeds;
  adaptive  the 7-lr grid × 1 seed, then round 2 planned by lrscale's own planner with the
            schema's defaults (lrscale.adaptive.plan_round: 3 lrs re-centred 1.2 grid steps apart,
            3/1/3 runs), max_runs 98.
Both are fitted by lrscale.analysis.fit.analyse (the same code as `lrscale fit`). Per cell, for the
answer's β (the joint model of every run, issue 23): error, CI coverage, CI half-width and the
adaptive/fixed ratio, and the verdict (fit_accuracy.judge: not decided, the true β ruled out); for the
per-B optima's β (the cross-check): its t-CI's coverage and half-width. The last cells put the
optimum of B=256 and B=512 1, 1.5 and 2 decades above the grid's top lr (adaptive: 3, 6 and 6
rounds at most): how often the sweep ends with both bracketed (and used in the fit), within the budget.
  python bench/adaptive_design.py [--reps 200] [--boot 100] [--workers 2] [--out bench/out/adaptive_design.json]
  python bench/adaptive_design.py --table-from bench/results/adaptive_design.json   # the README's table
"""

import collections
import json
import math
import sys
import time
import zlib
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_accuracy import BATCH, CURVATURE, DIVERGE_ABOVE, bounds, judge, parse_args, truth  # noqa: E402
from lrscale import adaptive, config  # noqa: E402
from lrscale.analysis.fit import analyse  # noqa: E402
from lrscale.analysis.sweep_table import from_records  # noqa: E402

RUNS = 98


def loss(lr, lr_opt, b, shape, sigma, rng):
    """One run's final loss (NaN: diverged)."""
    d = math.log10(lr) - math.log10(lr_opt)
    if d > DIVERGE_ABOVE:
        return math.nan
    clean = 1.0 + 1.0 / math.sqrt(b) + CURVATURE * d**2 + (2 * CURVATURE * max(d, 0) ** 3 if shape == "asym" else 0)
    return clean + rng.normal(0, sigma)


def run_points(points, lr_opt, shape, sigma, rng) -> list:
    """Train (synthetically) each (B, lr, seed) point: the records the fit and the planner read."""
    opt = dict(zip(BATCH.tolist(), lr_opt))
    return [(b, lr, s, loss(lr, opt[b], b, shape, sigma, rng), math.nan, math.nan, math.nan) for b, lr, s in points]


RECENTER = {}  # the schema's default re-centring (experiments override it here)
# Edge cells: (decades above the grid, rounds ceiling): issue 11's decade with 3 rounds, and
# issue 28's 1.5 and 2 decades with config/phase_2_adaptive.yaml's ceiling of 6.
EDGE_CASES = [(1.0, 3), (1.5, 6), (2.0, 6)]


def sweep_config(lrs, seeds, rounds) -> dict:
    return config.validate({"sweep": {"name": "bench", "batch_sizes": BATCH.tolist(), "lrs": list(lrs), "seeds": list(seeds),
                                      "adaptive": {"rounds": rounds, "max_runs": RUNS, "recenter": RECENTER}}})


def grid_lrs(rng, shift=0.0):
    """7 lrs half a decade apart with a random phase, snapped to run-name precision like real configs."""
    return [adaptive.snap(v) for v in 10 ** (-4.5 + shift + 0.5 * np.arange(7) + rng.uniform(-0.25, 0.25))]


def adaptive_sweep(lrs, lr_opt, shape, sigma, rng, rounds=2):
    """Run round 1 (grid × 1 seed), then each planned round, through the package's planner."""
    cfg = sweep_config(lrs, [0], rounds)
    records = run_points([(p["batch_size"], p["lr"], p["seed"]) for p in config.grid(cfg)], lr_opt, shape, sigma, rng)
    plans = []
    for r in range(2, rounds + 1):
        plan = adaptive.plan_round(cfg, r, from_records(records, "lrscale", 0.1), plans)
        plans.append(plan)
        records += run_points([(p["batch_size"], p["lr"], p["seed"]) for p in plan["points"]], lr_opt, shape, sigma, rng)
    return adaptive.set_grid(from_records(records, "lrscale", 0.1), lrs), plans  # as `lrscale fit --plans` does


def fixed_sweep(lrs, lr_opt, shape, sigma, rng):
    cfg = sweep_config(lrs, [0, 1], 1)
    points = [(p["batch_size"], p["lr"], p["seed"]) for p in config.grid(cfg)]
    return from_records(run_points(points, lr_opt, shape, sigma, rng), "lrscale", 0.1)


def _score(r, beta, log, tag):
    """One sweep's answer (the joint model's β and CI, the verdict) and its per-B cross-check's β."""
    j, verdict = r["surface"], judge(r, beta, new=True, lr_opt=truth("power_law", beta))
    log[f"{tag}_declined"].append(verdict["declined"])
    log[f"{tag}_why"].append(r["answer"].get("untested") or "decided")
    log[f"{tag}_ruled_out"].append(verdict["ruled_out"])
    log[f"{tag}_no_joint"].append(j["beta"] is None)
    if j["beta"] is not None:
        lo, hi = bounds(j["ci95"])
        log[f"{tag}_joint_err"].append(j["beta"] - beta)
        log[f"{tag}_joint_cov"].append(lo <= beta <= hi)
        log[f"{tag}_joint_hw"].append((hi - lo) / 2)
    log[f"{tag}_no_beta"].append(r["beta"] is None)
    if r["beta"] is not None:
        log[f"{tag}_err"].append(r["beta"] - beta)
        log[f"{tag}_cov_t"].append(r["ci95_t"][0] <= beta <= r["ci95_t"][1])
        log[f"{tag}_hw"].append((r["ci95_t"][1] - r["ci95_t"][0]) / 2)


def run_cell(spec):
    shape, sigma, beta, reps, boot = spec
    rng = np.random.default_rng(zlib.crc32(repr(spec[:3]).encode()))
    lr_opt = truth("power_law", beta)
    log = {f"{t}_{k}": [] for t in ("fixed", "adaptive") for k in ("joint_err", "joint_cov", "joint_hw", "no_joint",
                                                                   "declined", "ruled_out", "err", "cov_t", "hw", "no_beta",
                                                                   "why")}
    runs = []
    for _ in range(reps):
        lrs = grid_lrs(rng)
        seed = int(rng.integers(1 << 31))
        _score(analyse(fixed_sweep(lrs, lr_opt, shape, sigma, rng), bootstrap=boot, seed=seed), beta, log, "fixed")
        sweep, _ = adaptive_sweep(lrs, lr_opt, shape, sigma, rng)
        runs.append(sum(int(sweep.counts(b).sum()) for b in sweep.batch_sizes))
        _score(analyse(sweep, bootstrap=boot, seed=seed), beta, log, "adaptive")
    summary = lambda k, v: (float(np.median(v)) if k.endswith("hw") else float(np.mean(v))) if v else None  # noqa: E731
    row = {"shape": shape, "sigma": sigma, "beta": beta, "reps": reps, "runs_adaptive_min": min(runs),
           "runs_adaptive_max": max(runs)}
    row.update({k: summary(k, v) for k, v in log.items() if not k.endswith("_why")})  # half-widths: the median
    row.update({k: dict(collections.Counter(v)) for k, v in log.items() if k.endswith("_why")})  # why not decided
    row["hw_ratio"] = row["adaptive_hw"] / row["fixed_hw"]
    row["joint_hw_ratio"] = row["adaptive_joint_hw"] / row["fixed_joint_hw"]
    return row


def run_edge_cell(spec):
    """B=256 and 512 have their optimum `decades` (default 1) above the grid's top lr; the adaptive
    sweep gets `rounds` (default 3) rounds at most."""
    shape, sigma, reps, decades, rounds = (*spec, 1.0, 3) if len(spec) == 3 else spec
    seed_key = ("edge",) + spec[:2] + ((decades,) if decades != 1.0 else ())  # the 1-decade cell draws as before
    rng = np.random.default_rng(zlib.crc32(repr(seed_key).encode()))
    bracketed, included, within, fixed_bracketed = [], [], [], []
    for _ in range(reps):
        lr_opt = truth("power_law", 0.5)
        lrs = grid_lrs(rng)
        lr_opt[-2:] = [lrs[-1] * 10**decades, lrs[-1] * 10**decades]
        sweep, plans = adaptive_sweep(lrs, lr_opt, shape, sigma, rng, rounds=rounds)
        rows = {r["batch_size"]: r for r in analyse(sweep, bootstrap=0)["per_batch"]}
        bracketed.append(all(not {"edge", "insufficient"} & set(rows[b]["flags"]) for b in (256, 512)))
        included.append(all(rows[b]["included"] for b in (256, 512)))
        within.append(sum(int(sweep.counts(b).sum()) for b in sweep.batch_sizes) <= RUNS)
        rows_f = {r["batch_size"]: r for r in analyse(fixed_sweep(lrs, lr_opt, shape, sigma, rng), bootstrap=0)["per_batch"]}
        fixed_bracketed.append(all(not {"edge", "insufficient"} & set(rows_f[b]["flags"]) for b in (256, 512)))
    return {"shape": shape, "sigma": sigma, "reps": reps, "decades": decades, "rounds": rounds,
            "bracketed": float(np.mean(bracketed)),
            "included": float(np.mean(included)),
            "within_budget": float(np.mean(within)), "fixed_bracketed": float(np.mean(fixed_bracketed))}


def targets(rows, edge) -> dict:
    return {
        "joint β CI half-width >= 30% narrower (adaptive/fixed <= 0.70)": all(r["joint_hw_ratio"] <= 0.70 for r in rows),
        "adaptive joint β CI coverage 0.90-0.98": all(0.90 <= r["adaptive_joint_cov"] <= 0.98 for r in rows),
        "adaptive |mean joint β error| <= 0.02": all(abs(r["adaptive_joint_err"]) <= 0.02 for r in rows),
        "adaptive: the true β ruled out <= 5%": all(r["adaptive_ruled_out"] <= 0.05 for r in rows),
        "optimum 1-2 decades above the grid: bracketed >= 95% within the budget": all(
            e["bracketed"] >= 0.95 and e["within_budget"] == 1.0 for e in edge),
    }


def fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def pair(r, key, spec):
    """'fixed / adaptive' of one measure."""
    return f"{fmt(r.get('fixed_' + key), spec)} / {fmt(r.get('adaptive_' + key), spec)}"


def markdown(rows, edge) -> str:
    head = ["curve", "σ", "β", "joint β error", "joint CI cov.", "joint CI half-width", "ratio", "not decided",
            "truth ruled out", "per-B t-CI cov.", "per-B t half-width", "ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["shape"], f"{r['sigma']:g}", f"{r['beta']:g}", pair(r, "joint_err", "+.3f"), pair(r, "joint_cov", ".2f"),
            pair(r, "joint_hw", ".3f"), fmt(r.get("joint_hw_ratio"), ".2f"), pair(r, "declined", ".2f"),
            pair(r, "ruled_out", ".2f"), pair(r, "cov_t", ".2f"), pair(r, "hw", ".3f"), fmt(r["hw_ratio"], ".2f")]) + " |")
    lines += ["", "| optimum of B=256, 512 above the grid | decades | σ | rounds (ceiling) | bracketed (adaptive) | "
              "used in the fit | within 98 runs | bracketed (fixed grid) |", "|---|---|---|---|---|---|---|---|"]
    for e in edge:
        lines.append(f"| {e['shape']} | {e.get('decades', 1.0):g} | {e['sigma']:g} | {e.get('rounds', 3)} | "
                     f"{e['bracketed']:.2f} | {e['included']:.2f} | {e['within_budget']:.2f} | {e['fixed_bracketed']:.2f} |")
    return "\n".join(lines)


def reasons_table(rows) -> str:
    """Why each design's verdict was not decided (answer.untested; fit.untested_reasons), sweeps per reason."""
    lines = ["| curve | σ | β | not decided, fixed grid | not decided, adaptive |", "|---|---|---|---|---|"]
    for r in rows:
        why = lambda tag: ", ".join(f"{k} {n}" for k, n in sorted(r.get(f"{tag}_why", {}).items())  # noqa: E731
                                    if k != "decided") or "none"
        lines.append(f"| {r['shape']} | {r['sigma']:g} | {r['beta']:g} | {why('fixed')} | {why('adaptive')} |")
    return "\n".join(lines)


def main():
    args = parse_args("bench/out/adaptive_design.json", boot=100)
    if args.table_from:
        saved = json.loads(Path(args.table_from).read_text())
        print(markdown(saved["rows"], saved["edge"]))
        print("\n" + reasons_table(saved["rows"]) if "fixed_why" in saved["rows"][0] else "")
        return
    t0 = time.time()
    cells = [(shape, sigma, beta, args.reps, args.boot) for shape in ("sym", "asym") for sigma in (0.01, 0.02)
             for beta in (0.5, 0.667, 1.0)]
    with Pool(args.workers) as pool:
        rows = pool.map(run_cell, cells)
        edge = pool.map(run_edge_cell, [(shape, 0.01, args.reps, decades, rounds) for shape in ("sym", "asym")
                                        for decades, rounds in EDGE_CASES])
    print(markdown(rows, edge))
    print("\n" + reasons_table(rows))
    met = targets(rows, edge)
    for name, ok in met.items():
        print(f"{'MET    ' if ok else 'NOT MET'}  {name}")
    print(f"({time.time() - t0:.0f} s, {args.reps} replicates per cell, {args.boot} bootstrap resamples)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"reps": args.reps, "boot": args.boot, "targets": met, "rows": rows, "edge": edge},
                              indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
