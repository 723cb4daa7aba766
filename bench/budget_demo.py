"""Issue 24.6's CPU demonstration: what the budget held fixed does to β, on teacher_student.

Three real sweeps through snakemake (config/budget_demo.yaml's task, grid and WSD schedule):
  steps          every B trains 512 steps (B = 8 sees 4k samples, B = 256 131k): the seed study's budget
  samples        every B sees the same samples, at 3 horizons (8k, 32k, 131k) branched from one WSD
                 stable phase per (B, lr, seed)
  samples_beta2  the same with β₂ co-scaled from B = 64 (constant half-life in samples)
Per sweep and horizon: the answer's β with its CI; across horizons: the joint β and γ; the bending
form's B_noise, the gradient-noise B_simple and the critical batch size B_crit from the steps each B
needs to reach a loss (analysis/horizons.json).
    python bench/budget_demo.py [--out bench/results/budget_demo.json]   # about 25 min on 2 cores
    python bench/budget_demo.py --label-noise --out bench/results/b_crit_label_noise.json
        # issue 24.4's check instead: config/b_crit_label_noise.yaml (B = 128…8192, 5 horizons) at two
        # label-noise levels (task.noise_scale 0.1 and 1.0); more label noise must give a larger
        # B_crit, compared at loss targets both sweeps cross (about 70 min on 2 cores)
"""

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def variants(base: dict) -> dict:
    steps = copy.deepcopy(base)
    steps["budget"] = {"unit": "steps", "value": 512}
    beta2 = copy.deepcopy(base)
    beta2["optimizer"] = {"scale_with_batch": {"reference_batch_size": 64, "beta2": True}}
    out = {"steps": steps, "samples": base, "samples_beta2": beta2}
    for name, cfg in out.items():
        cfg["sweep"]["name"] = f"budget_demo_{name}"
    return out


LABEL_NOISE = (0.1, 1.0)  # task.noise_scale: label noise over the teacher's output (the demo's own: 0.5)


def label_noise_variants(base: dict) -> dict:
    out = {}
    for scale in LABEL_NOISE:
        cfg = copy.deepcopy(base)
        cfg["task"]["noise_scale"] = scale
        cfg["sweep"]["name"] = f"budget_demo_noise{scale:g}"
        out[f"noise {scale:g}"] = cfg
    return out


MIN_CROSSING = 5  # batch sizes of each sweep that must cross a common target between two horizons


def crossing(table: dict, target: float) -> int:
    """How many batch sizes cross `target` between two horizons (above it at the first, at or below at the last)."""
    return sum(loss[0] > target >= loss[-1] for _, loss in table.values())


def common_targets(tables: dict) -> dict:
    """B_crit per sweep at the same loss targets: spread (horizons.TARGET_QUANTILES) over the losses that
    at least MIN_CROSSING batch sizes of every sweep cross between two horizons, so that the sweeps are
    compared at one loss (each sweep's own targets differ: the loss reached moves with the noise). The
    expected loss gradient and curvature at a given clean validation loss do not depend on the label
    noise, so there more noise means more gradient noise and a larger B_crit (McCandlish et al. 2018)."""
    import numpy as np

    from lrscale.analysis.critical_batch import fit_b_crit, steps_to_target
    from lrscale.analysis.horizons import TARGET_QUANTILES

    losses = [v for t in tables.values() for _, loss in t.values() for v in loss]
    grid = np.geomspace(min(losses), max(losses), 400)
    ok = [t for t in grid if all(crossing(table, t) >= MIN_CROSSING for table in tables.values())]
    if not ok:
        return {"reason": f"no loss is crossed between two horizons by {MIN_CROSSING} batch sizes of every sweep"}
    targets = [float(ok[min(int(q * len(ok)), len(ok) - 1)]) for q in TARGET_QUANTILES]  # each one passes
    out = {}
    for name, table in tables.items():
        bs = sorted(table)
        out[name] = []
        for target in targets:
            steps = [steps_to_target(*table[b], target) for b in bs]
            out[name].append({"target_loss": target, **fit_b_crit(bs, steps), "batch_sizes": bs, "steps": steps})
    return {"by_sweep": out}


def run(work: Path, cfg: dict) -> Path:
    path = work / f"{cfg['sweep']['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    r = subprocess.run([str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
                        "--cores", "2", "--configfile", str(path)], capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"snakemake failed for {path}:\n{r.stderr[-3000:]}")
    return work / "results" / cfg["sweep"]["name"] / "analysis"


def _ci(ci, fmt=".3f") -> str:
    return "—" if not ci else "[" + ", ".join("open" if v is None else format(v, fmt) for v in ci) + "]"


def row(name: str, horizon, fit: dict) -> dict:
    from lrscale.analysis.horizons import proxies

    a = fit["answer"]
    return {"sweep": name, "horizon": horizon, "beta": a["beta"], "ci95": a["ci95"], "verdict": fit["verdict"].splitlines()[0],
            **proxies(fit)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "budget_demo.json"))
    p.add_argument("--work", default=str(REPO / "bench" / "out" / "budget_demo"))
    p.add_argument("--label-noise", action="store_true", help="the samples sweep at label noise "
                   f"{' and '.join(map(str, LABEL_NOISE))} instead of the three budget variants")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((REPO / "config" / ("b_crit_label_noise.yaml" if args.label_noise else "budget_demo.yaml")).read_text())
    from lrscale.analysis.horizons import finished_batches

    t0, rows, across, tables = time.time(), [], {}, {}
    for name, cfg in (label_noise_variants(base) if args.label_noise else variants(base)).items():
        analysis = run(work, cfg)
        if name == "steps":
            rows.append(row(name, "512 steps", json.loads((analysis / "fit.json").read_text())))
            continue
        for h in cfg["budget"]["values"]:
            rows.append(row(name, f"{h} samples", json.loads((analysis / f"D{h}" / "fit.json").read_text())))
        across[name] = json.loads((analysis / "horizons.json").read_text())
        tables[name] = finished_batches(analysis.parent / "results.csv")
    print("| sweep | budget | β (95% CI) | B_noise (McCandlish, 95% CI) | B_simple (median) |")
    print("|---|---|---|---|---|")
    for r in rows:
        beta = "—" if r["beta"] is None else f"{r['beta']:.3f} {_ci(r['ci95'])}"
        bn = "—" if r["b_noise"] is None else f"{r['b_noise']:.3g} {_ci(r['b_noise_ci95'], '.3g')}"
        bs = "—" if r["b_simple_median"] is None else f"{r['b_simple_median']:.3g}"
        print(f"| {r['sweep']} | {r['horizon']} | {beta} | {bn} | {bs} |")
    for name, s in across.items():
        j = s["joint"]
        print(f"\n{name}: {s['sentence']}")
        for t in s.get("critical_batch", {}).get("targets", []):
            bc = "—" if t["b_crit"] is None else f"{t['b_crit']:.3g} {_ci(t.get('ci95'), '.3g')}"
            print(f"  B_crit at loss {t['target_loss']:.4g}: {bc}" + (f" ({t['reason']})" if t.get("reason") else ""))
        if j["beta"] is not None:
            print(f"  joint β {j['beta']:.3f} {_ci(j['beta_ci95'])}, γ {j['gamma']:.3f} {_ci(j['gamma_ci95'])}")
    common = common_targets(tables) if args.label_noise else None
    if common:
        print("\nB_crit at loss targets every sweep crosses:" + (f" none, {common['reason']}" if "reason" in common else ""))
        for name, fits in common.get("by_sweep", {}).items():
            for t in fits:
                bc = "—" if t["b_crit"] is None else f"{t['b_crit']:.3g} {_ci(t.get('ci95'), '.3g')}"
                used = [b for b, s in zip(t["batch_sizes"], t["steps"]) if s]
                print(f"  {name}, loss {t['target_loss']:.4g}: {bc}" + (f" ({t['reason']})" if t.get("reason") else "")
                      + f"; B = {', '.join(map(str, used))}; S_min {t.get('s_min', float('nan')):.3g}")
    print(f"{time.time() - t0:.0f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "across": across, "common_targets": common, "wall_s": time.time() - t0},
                              indent=1))


if __name__ == "__main__":
    main()
