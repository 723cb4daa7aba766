"""Training throughput: steps/s and samples/s for both built-in tasks at B=8 and B=512.

Runs on the current device (CUDA when present, else CPU). Prints a table and writes JSON.
steps/s is steady state: each point runs S steps once (discarded warm-up), then S and 2S steps `--reps` times each,
interleaved, and divides S by the difference of the fastest S-step and 2S-step loop times, so start-up, warm-up and
torch.compile time cancel out and a one-off stall (GPU clocks, a busy core) does not (the minimum is the least
disturbed run).
  python bench/train_throughput.py [--out bench/out/train_throughput.json] [--steps N] [--reps R] [--corpus PATH]
char_lm uses --corpus when given (e.g. TinyShakespeare), else a generated corpus.
"""

import argparse
import contextlib
import io
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import torch  # noqa: E402

from lrscale import config  # noqa: E402
from lrscale.train import train  # noqa: E402


def corpus(tmp):
    rng = random.Random(0)
    words = "the king shall speak to thee and my lord of york now is".split()
    text = " ".join(rng.choice(words) for _ in range(60000))
    p = Path(tmp) / "corpus.txt"
    p.write_text(text)
    return str(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/out/train_throughput.json")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3, help="timed S / 2S pairs per point (the fastest of each counts)")
    ap.add_argument("--tasks", default="teacher_student,char_lm")
    ap.add_argument("--corpus")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--variants", default="default", help="comma list: default,fp32,compile")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    path = args.corpus or corpus(tmp)
    tasks = {
        "teacher_student": {"task": {"name": "teacher_student"}},
        "char_lm": {"task": {"name": "char_lm", "seq_len": 256, "val_tokens": 8192, "data": {"path": path}},
                    "model": {"d_model": 64, "n_layers": 4, "n_heads": 4}},
    }
    variants = {"default": {}, "fp32": {"precision": "fp32"}, "compile": {"compile": "cudagraphs"}}
    rows = []
    for name, spec in ((n, tasks[n]) for n in args.tasks.split(",")):
        for variant in args.variants.split(","):
            for b in (8, 512):
                # Steady state: S and 2S steps; the difference cancels start-up, warm-up and compile time.
                # A first, discarded run pays the process-wide one-time costs (CUDA context, kernels).
                loop_s = {"warmup": [], args.steps: [], 2 * args.steps: []}
                for steps in [args.steps] + [args.steps, 2 * args.steps] * args.reps:
                    cfg = config.validate({**spec, "budget": {"unit": "steps", "value": steps},
                                           "train": {"eval_points": 2, **variants[variant]}})
                    with contextlib.redirect_stderr(io.StringIO()):
                        m = train(cfg, b, 1e-3, 0, Path(tmp) / "m.json", device=args.device)
                    key = "warmup" if not loop_s["warmup"] else steps
                    loop_s[key].append(m["num_steps"] / m["steps_per_s"])
                sps = args.steps / max(min(loop_s[2 * args.steps]) - min(loop_s[args.steps]), 1e-9)
                spread = (max(loop_s[args.steps]) - min(loop_s[args.steps])) / min(loop_s[args.steps])
                tokens = sps * b * spec["task"]["seq_len"] if name == "char_lm" else None
                rows.append({"task": name, "variant": variant, "batch_size": b, "steps_per_s": sps,
                             "samples_per_s": sps * b, "tokens_per_s": tokens,
                             "first_run_steps_per_s_incl_warmup": args.steps / loop_s["warmup"][0],
                             "reps": args.reps, "s_step_loop_spread": spread,
                             "precision": m["precision"], "device": m["device_name"]})
                r = rows[-1]
                print(f"{name:16s} {variant:8s} B={b:<4d} {r['steps_per_s']:9.1f} steps/s {r['samples_per_s']:11.1f} samples/s"
                      f"  ({r['precision']}, {r['device']}; S-run spread {spread:.0%})", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
