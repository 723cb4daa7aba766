"""What WSD branching costs (issue 24.2): the training steps of a 3-horizon WSD sweep, counted from
its runs, against its longest horizon run alone.

Runs the real snakemake on a teacher_student sweep (B = 8, 32, 128; 3 lrs; budget.values 16k, 64k,
256k samples; wsd, 5 warmup steps) and counts, per (B, lr): the stable phase's updates (where the
longest horizon's cool-down starts: its branch's `resumed_from_step`) plus each branch's own
updates (`num_steps − resumed_from_step`), against the longest horizon's steps alone. Diverged runs
stop early and are left out of the ratio. Target: ≤ 1.5×.
    python bench/wsd_branch_cost.py [--out bench/results/wsd_branch_cost.json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HORIZONS = [16384, 65536, 262144]
CONFIG = {
    "sweep": {"name": "wsd_cost", "batch_sizes": [8, 32, 128], "lrs": [0.003, 0.01, 0.03], "seeds": [0]},
    "task": {"name": "teacher_student", "input_dim": 8, "teacher_hidden": 16, "val_size": 256},
    "model": {"hidden": 16, "depth": 1}, "budget": {"unit": "samples", "values": HORIZONS},
    "schedule": {"name": "wsd", "warmup_steps": 5}, "train": {"eval_points": 8},
    "wandb": {"mode": "disabled"}, "analysis": {"bootstrap": 20},
}


def count(results: Path) -> list[dict]:
    rows = []
    for b in CONFIG["sweep"]["batch_sizes"]:
        for lr in CONFIG["sweep"]["lrs"]:
            runs = [json.loads((results / f"runs/B{b}_LR{lr:.6f}/D{h}/seed0/metrics.json").read_text()) for h in HORIZONS]
            if any(m["diverged"] for m in runs):
                continue
            stable = runs[-1]["resumed_from_step"]  # the longest horizon's cool-down start: where the phase ended
            branches = sum(m["num_steps"] - m["resumed_from_step"] for m in runs)
            rows.append({"batch_size": b, "lr": lr, "stable_steps": stable, "cooldown_steps": branches,
                         "total_steps": stable + branches, "longest_alone": runs[-1]["num_steps"],
                         "ratio": (stable + branches) / runs[-1]["num_steps"],
                         "independent_runs": sum(m["num_steps"] for m in runs)})
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "wsd_branch_cost.json"))
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wsd_cost_"))
    (work / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    t0 = time.time()
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    subprocess.run([str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
                    "--cores", "2", "results/wsd_cost/results.csv", "--configfile", str(work / "config.yaml")],
                   check=True, capture_output=True, env=env)
    rows = count(work / "results" / "wsd_cost")
    print("| B | lr | stable | cool-downs | total | longest alone | ratio | 3 runs from scratch |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch_size']} | {r['lr']} | {r['stable_steps']} | {r['cooldown_steps']} | {r['total_steps']} "
              f"| {r['longest_alone']} | {r['ratio']:.3f} | {r['independent_runs'] / r['longest_alone']:.3f} |")
    worst = max(r["ratio"] for r in rows)
    print(f"worst ratio {worst:.3f} (target ≤ 1.5); {time.time() - t0:.0f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"horizons": HORIZONS, "rows": rows, "worst_ratio": worst,
                               "wall_s": time.time() - t0}, indent=1))


if __name__ == "__main__":
    main()
