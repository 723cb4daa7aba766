"""Training throughput: steps/s and samples/s for both built-in tasks at B=8 and B=512.

Runs on the current device (CUDA when present, else CPU). Prints a table and writes JSON.
steps/s is steady state: each point runs S (discarded warm-up), S and 2S steps and divides S by the difference in loop
time, so start-up, warm-up and torch.compile time cancel out.
  python bench/train_throughput.py [--out bench/out/train_throughput.json] [--steps N] [--corpus PATH]
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
    for name, spec in tasks.items():
        for variant in args.variants.split(","):
            for b in (8, 512):
                # Steady state: S and 2S steps; the difference cancels start-up, warm-up and compile time.
                # A first, discarded run pays the process-wide one-time costs (CUDA context, kernels).
                loop_s = {}
                for steps in (args.steps, args.steps, 2 * args.steps):
                    cfg = config.validate({**spec, "budget": {"unit": "steps", "value": steps},
                                           "train": {"eval_points": 2, **variants[variant]}})
                    with contextlib.redirect_stderr(io.StringIO()):
                        m = train(cfg, b, 1e-3, 0, Path(tmp) / "m.json", device=args.device)
                    loop_s[steps] = m["num_steps"] / m["steps_per_s"]
                sps = args.steps / max(loop_s[2 * args.steps] - loop_s[args.steps], 1e-9)
                tokens = sps * b * spec["task"]["seq_len"] if name == "char_lm" else None
                rows.append({"task": name, "variant": variant, "batch_size": b, "steps_per_s": sps,
                             "samples_per_s": sps * b, "tokens_per_s": tokens,
                             "first_run_steps_per_s_incl_warmup": args.steps / loop_s[args.steps],
                             "precision": m["precision"], "device": m["device_name"]})
                r = rows[-1]
                print(f"{name:16s} {variant:8s} B={b:<4d} {r['steps_per_s']:9.1f} steps/s {r['samples_per_s']:11.1f} samples/s"
                      f"  ({r['precision']}, {r['device']})", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
