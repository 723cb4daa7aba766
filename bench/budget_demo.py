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
        # issue 24.4's check instead: the samples sweep at two label-noise levels (task.noise_scale
        # 0.1 and 1.0); more label noise must give a larger B_crit
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
    a, mc = fit["answer"], (fit.get("forms") or {}).get("mccandlish") or {}
    return {"sweep": name, "horizon": horizon, "beta": a["beta"], "ci95": a["ci95"], "verdict": fit["verdict"].splitlines()[0],
            "b_noise": mc.get("b_noise"), "b_noise_ci95": mc.get("b_noise_ci95"),
            "b_simple_median": (fit.get("gradient_noise") or {}).get("b_simple_median")}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "budget_demo.json"))
    p.add_argument("--work", default=str(REPO / "bench" / "out" / "budget_demo"))
    p.add_argument("--label-noise", action="store_true", help="the samples sweep at label noise "
                   f"{' and '.join(map(str, LABEL_NOISE))} instead of the three budget variants")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((REPO / "config" / "budget_demo.yaml").read_text())
    t0, rows, across = time.time(), [], {}
    for name, cfg in (label_noise_variants(base) if args.label_noise else variants(base)).items():
        analysis = run(work, cfg)
        if name == "steps":
            rows.append(row(name, "512 steps", json.loads((analysis / "fit.json").read_text())))
            continue
        for h in cfg["budget"]["values"]:
            rows.append(row(name, f"{h} samples", json.loads((analysis / f"D{h}" / "fit.json").read_text())))
        across[name] = json.loads((analysis / "horizons.json").read_text())
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
    print(f"{time.time() - t0:.0f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "across": across, "wall_s": time.time() - t0}, indent=1))


if __name__ == "__main__":
    main()
