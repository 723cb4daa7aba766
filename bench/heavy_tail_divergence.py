"""Is heavy-tailed label noise called divergence? (issue 28.1)

The demo's teacher_student task and model (config/config.yaml), 400 steps, at two stable lrs (0.001,
0.003), with Student-t (df 2.5, 3) and Laplace label noise at 2x and 3x the signal, B = 8 and 64,
4 seeds: 96 runs, each run in this process as the train rule runs it (one thread). Prints how many
were called diverged per cell and writes JSON. Run it on another checkout's code to compare rules:
  python bench/heavy_tail_divergence.py [--out bench/out/heavy_tail_divergence.json]
  PYTHONPATH=<old checkout>/src python bench/heavy_tail_divergence.py --out before.json
"""

import argparse
import contextlib
import io
import itertools
import json
import tempfile
import time
from pathlib import Path

import yaml

import lrscale
from lrscale import config, train

NOISES = [("student_t", 2.5), ("student_t", 3.0), ("laplace", 3.0)]


def one_run(base: dict, noise, df, scale, batch, lr, seed) -> dict:
    cfg = json.loads(json.dumps(base))
    cfg["task"].update(noise=noise, df=df, noise_scale=scale)
    cfg["budget"] = {"unit": "steps", "value": 400}
    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stderr(io.StringIO()):
        m = train.train(config.validate(cfg), batch, lr, seed, Path(d) / "m.json", device="cpu", threads=1)
    return {"noise": noise, "df": df, "noise_scale": scale, "batch_size": batch, "lr": lr, "seed": seed,
            "diverged": m["diverged"], "diverged_at_step": m["diverged_at_step"], "final_val_loss": m["final_val_loss"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/out/heavy_tail_divergence.json")
    args = ap.parse_args()
    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
    t0, rows = time.time(), []
    for (noise, df), scale, batch, lr in itertools.product(NOISES, [2.0, 3.0], [8, 64], [0.001, 0.003]):
        runs = [one_run(base, noise, df, scale, batch, lr, seed) for seed in range(4)]
        rows += runs
        steps = [r["diverged_at_step"] for r in runs if r["diverged"]]
        print(f"| {noise} df {df:g} | scale {scale:g} | B={batch} | lr {lr:g} | diverged {len(steps)}/4 {steps} |",
              flush=True)
    total = sum(r["diverged"] for r in rows)
    print(f"diverged: {total} of {len(rows)} ({lrscale.__file__}; {time.time() - t0:.0f} s)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"code": lrscale.__file__, "diverged": total, "runs": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
