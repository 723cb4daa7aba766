"""W&B replay speed: a 49-config x 50-eval-point sweep into ONE offline run (target: well under 10 s).

Writes 49 synthetic, schema-valid metrics.json files (7 B x 7 lrs, 50 eval points), then times
lrscale.wandb_log.log_sweep in offline mode, and reads the run file back to count the rows.
  python bench/wandb_replay.py [--out bench/out/wandb_replay.json]
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from lrscale import __version__, config, wandb_file  # noqa: E402
from lrscale.aggregate import write_results_csv  # noqa: E402
from lrscale.fileio import atomic_write_json  # noqa: E402
from lrscale.wandb_log import log_sweep  # noqa: E402


def fake_metrics(cfg, b, lr, points=50):
    steps = [20 * (i + 1) for i in range(points)]
    val = [1 / math.sqrt(s) + abs(math.log10(lr) + 2.5) * 0.1 for s in steps]
    return {
        "schema_version": 1, "name": config.run_name(b, lr), "batch_size": b, "lr": lr, "seed": 0,
        "task": "teacher_student", "config": config.train_config(cfg), "config_hash": config.config_hash(cfg),
        "curves": {"step": steps, "samples_seen": [s * b for s in steps], "train_loss": val, "val_loss": val,
                   "learning_rate": [lr] * points},
        "final_train_loss": val[-1], "final_val_loss": val[-1], "min_val_loss": min(val), "train_loss_std": 0.001,
        "converged": True, "diverged": False, "diverged_at_step": None, "num_steps": steps[-1],
        "samples_seen": steps[-1] * b,
        "grad_norm": {"median": 1.0, "p95": 2.0, "max": 3.0, "clip": None, "clipped_fraction": 0.0},
        "wall_s": 1.0, "steps_per_s": 1000.0, "samples_per_s": 1000.0 * b, "peak_memory_mb": 100.0,
        "device": "cpu", "torch_version": "n/a", "lrscale_version": __version__,
    }


def write_synthetic_sweep(directory, project="lrscale"):
    """49 schema-valid metrics.json files + results.csv under `directory` (also used by the tests)."""
    directory = Path(directory)
    cfg = config.validate({"sweep": {"name": "replay", "lrs": [3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]},
                           "wandb": {"project": project}})
    paths = []
    for p in config.grid(cfg):
        path = directory / "runs" / p["name"] / "seed0" / "metrics.json"
        atomic_write_json(path, fake_metrics(cfg, p["batch_size"], p["lr"]))
        paths.append(path)
    write_results_csv(paths, directory / "results.csv")
    return cfg, paths


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/out/wandb_replay.json")
    args = ap.parse_args()
    os.environ["WANDB_MODE"] = "offline"
    tmp = Path(tempfile.mkdtemp())
    cfg, paths = write_synthetic_sweep(tmp, project="lrscale-bench")
    t0 = time.perf_counter()
    facts = log_sweep(cfg, tmp / "results.csv", paths, tmp / "wandb_run.json")
    replay_s = time.perf_counter() - t0
    rows = len(wandb_file.history(facts["run_file"]))
    result = {"configs": len(paths), "eval_points": 50, "log_calls": facts["log_calls"], "history_rows": rows,
              "replay_s": replay_s, "log_calls_per_s": facts["log_calls"] / replay_s, "target_s": 10.0}
    print(f"{'configs':>8} {'log calls':>10} {'rows read back':>15} {'replay_s':>9} {'calls/s':>8}")
    print(f"{result['configs']:8d} {result['log_calls']:10d} {rows:15d} {replay_s:9.2f} {result['log_calls_per_s']:8.0f}")
    print(f"target: well under 10 s -> {'MET' if replay_s < 10 else 'NOT MET'} (includes wandb.init and finish)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
