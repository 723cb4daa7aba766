"""The Phase-2 sweep end to end through real snakemake, timed as the user waits for it (issue 12).

Each variant runs the same configs (Phase 2's 7 batch sizes, one lr each, `--steps` steps) on the
same card in its own work folder, through results.csv (the fit needs several lrs per B; it and the
W&B log take seconds on any machine, measured by `make run`):
  seed     the seed study's loop: fp32, no compile, a host sync every step, no noise probes, one job at a time
  default  lrscale's default (bf16 on CUDA, no compile) under `--resources gpu=1`
  fastest  torch.compile with CUDA graphs, `--slots` jobs per GPU (the slot pool) at once
Per job (from metrics.json `timing` and Snakemake's benchmark file): start-up (process start to
training: interpreter, imports, slot wait), setup (data, model, optimizer), compile (the first
update), train, eval, probe (gradient-noise probes), write (the rest of the job's wall: summary,
the write, process exit).
Overhead share: everything but the training loop (compile, train, eval) over the sweep's wall.
Full-sweep extrapolation to 7 lrs x `--full-steps`: each job's wall plus its extra updates at its
steady-state rate (eval points are a fixed count, so eval time does not grow), summed, divided by
the variant's measured concurrency (train-job seconds / train-phase wall), plus the pipeline's
own time (DAG build, aggregate). `--check-batch`: one B rerun at `--full-steps` per variant
named in `--check`, measured against its extrapolated job wall.
  python bench/sweep_gpu.py [--corpus PATH] [--steps 1000] [--full-steps 5000] [--out bench/out/sweep_gpu.json]
  python bench/sweep_gpu.py --tiny        # seconds on a CPU: a tiny model (CI runs this)
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from lrscale import config  # noqa: E402

RUNS_GLOB = config.RUN_METRICS.format(batch="*", lr="*", seed="*")
BIN = Path(sys.executable).parent
VARIANTS = {  # train-config overrides, environment, snakemake's --cores / --resources gpu
    "seed": ({"precision": "fp32", "compile": "off", "noise_probes": 0}, {"LRSCALE_BENCH_SYNC_EVERY_STEP": "1"}, "one"),
    "default": ({}, {}, "one"),
    "fastest": ({"compile": "cudagraphs"}, {}, "slots"),
}
PARTS = ("startup_s", "setup_s", "compile_s", "train_s", "eval_s", "probe_s", "write_s")


def sweep_config(args, name, steps, batch_sizes, train_overrides) -> dict:
    cfg = yaml.safe_load((REPO / "config/phase_2_batch_sweep.yaml").read_text())
    cfg["sweep"].update(name=name, batch_sizes=batch_sizes, lrs=[args.lr], seeds=[42])
    cfg["task"]["data"] = {"path": str(Path(args.corpus).resolve())}
    cfg["budget"]["value"] = steps
    cfg["analysis"]["bootstrap"] = 100
    if args.tiny:  # a model a 2-core CPU trains in seconds; the pipeline is the same
        cfg["task"].update(seq_len=32, val_tokens=2048)
        cfg["model"].update(d_model=16, n_layers=1, n_heads=2)
        cfg["schedule"]["warmup_steps"] = 2
    if not args.cuda and train_overrides.get("compile") == "cudagraphs":
        train_overrides = {**train_overrides, "compile": "off"}  # CUDA graphs need CUDA
    cfg["train"].update(train_overrides)
    return cfg


class GpuSampler:
    """nvidia-smi's utilisation every 200 ms while a variant runs (None without nvidia-smi)."""

    def __init__(self):
        self.samples, self.proc = [], None
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                          "-lms", "200"], stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL)
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.strip().isdigit():
                self.samples.append(int(line.strip()))

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()
        return sum(self.samples) / len(self.samples) if self.samples else None


def run_snakemake(args, variant, work, steps, batch_sizes) -> dict:
    overrides, env, mode = VARIANTS[variant]
    cfg = sweep_config(args, f"{variant}_{steps}", steps, batch_sizes, overrides)
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    slots = args.slots if mode == "slots" else 1
    # the seed study ran one job at a time; on a CPU the cores are the limit, not the GPU slots
    cores = 1 if variant == "seed" else max(slots, args.cores) if args.cuda else args.cores
    cmd = [shutil.which("snakemake") or str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
           "--profile", str(REPO / "profiles/default"), "--cores", str(cores),
           f"results/{cfg['sweep']['name']}/results.csv", "--configfile", str(work / "config.yaml")]
    if args.cuda:
        cmd[-2:-2] = ["--resources", f"gpu={slots}"]
    shim = work / "bin"  # the rules call `python`; some machines have only python3
    shim.mkdir(exist_ok=True)
    (shim / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # not a link: a venv
    (shim / "python").chmod(0o755)  # finds its packages through the path it was started by
    env = {**os.environ, **env, "PATH": f"{shim}:{BIN}:{os.environ.get('PATH', '')}", "WANDB_MODE": "offline",
           "LRSCALE_SLOTS_PER_GPU": str(slots), "LRSCALE_GPU_LOCK_DIR": str(work / "gpu-slots")}
    sampler, t0 = GpuSampler(), time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall_s, gpu_util = time.monotonic() - t0, sampler.stop()
    if r.returncode != 0:
        raise SystemExit(f"sweep_gpu: {variant} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    jobs = [job_row(work / "results" / cfg["sweep"]["name"], config.run_metrics(b, args.lr, 42)) for b in batch_sizes]
    return {"variant": variant, "steps": steps, "wall_s": wall_s, "gpu_util_mean_pct": gpu_util, "jobs": jobs,
            "slots": slots, "device": jobs[0]["device_name"]}


def job_row(results: Path, metrics_rel: str) -> dict:
    """One job's wall split, from its metrics.json timing and Snakemake's benchmark file (the train
    rule's `benchmark:` sits under benchmarks/train/ as <run>_seed<seed>.tsv)."""
    path = results / metrics_rel
    m = json.loads(path.read_text())
    if "timing" not in m:
        raise SystemExit(f"sweep_gpu: {path}: no `timing` block; expected metrics.json from lrscale with issue 12's timing")
    with open(results / "benchmarks" / "train" / f"{m['name']}_seed{m['seed']}.tsv") as f:
        job_s = float(next(csv.DictReader(f, delimiter="\t"))["s"])
    t = m["timing"]
    parts = {"startup_s": t["startup_s"] or 0.0, "setup_s": t["setup_s"], "compile_s": t["first_step_s"],
             "train_s": t["train_s"], "eval_s": t["eval_s"], "probe_s": t.get("probe_s", 0.0)}
    return {"batch_size": m["batch_size"], "lr": m["lr"], "seed": m["seed"], "job_s": job_s, **parts,
            "write_s": max(0.0, job_s - sum(parts.values())),  # the rest: summary, the write, process exit
            "steps_per_s": t["train_steps_per_s"], "final_val_loss": m["final_val_loss"],
            "device_name": m["device_name"], "end_mtime": path.stat().st_mtime}


def split_of(results: Path) -> dict:
    """Where a finished sweep's job-seconds went (`--from-results`): sums over its train jobs."""
    jobs = [job_row(results, str(p.relative_to(results))) for p in sorted(results.glob(RUNS_GLOB))]
    total = {k: sum(j[k] for j in jobs) for k in ("job_s",) + PARTS}
    return {"results": str(results), "jobs": len(jobs), "job_seconds": total,
            "loop_share": (total["compile_s"] + total["train_s"] + total["eval_s"]) / total["job_s"],
            "probe_share": total["probe_s"] / total["job_s"]}


def extrapolate(run: dict, full_steps: int, lrs_full: int) -> dict:
    """Full sweep wall: per-job walls at full_steps x lrs_full, over the measured concurrency."""
    jobs = run["jobs"]
    full = {j["batch_size"]: j["job_s"] + (full_steps - run["steps"]) / j["steps_per_s"] for j in jobs}
    job_sum = sum(j["job_s"] for j in jobs)
    starts = [j["end_mtime"] - j["job_s"] for j in jobs]
    train_phase_s = max(j["end_mtime"] for j in jobs) - min(starts)
    concurrency = max(1.0, job_sum / train_phase_s) if train_phase_s > 0 else 1.0
    pipeline_s = max(0.0, run["wall_s"] - train_phase_s)
    sweep_s = pipeline_s + lrs_full * sum(full.values()) / concurrency
    loop_s = lrs_full * sum(full[j["batch_size"]] - j["startup_s"] - j["setup_s"] - j["write_s"] for j in jobs) / concurrency
    return {"job_full_s": full, "concurrency": concurrency, "pipeline_s": pipeline_s, "sweep_full_s": sweep_s,
            "overhead_share": 1 - loop_s / sweep_s}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", help="TinyShakespeare (a generated corpus with --tiny if omitted)")
    ap.add_argument("--tiny", action="store_true", help="a tiny model and 3 batch sizes: the CPU/CI run")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--full-steps", type=int, default=5000)
    ap.add_argument("--lrs-full", type=int, default=7, help="lrs per B in the full sweep")
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--variants", default="seed,default,fastest")
    ap.add_argument("--slots", type=int, default=7, help="jobs per GPU in the fastest variant")
    ap.add_argument("--cores", type=int, default=2, help="snakemake --cores on a CPU")
    ap.add_argument("--check-batch", type=int, default=64)
    ap.add_argument("--check", default="default", help="variants whose full-steps check job runs")
    ap.add_argument("--work", default="bench/out/sweep_gpu_work")
    ap.add_argument("--out", default="bench/out/sweep_gpu.json")
    ap.add_argument("--from-results", help="only print where a finished sweep's job-seconds went (results/<sweep>)")
    args = ap.parse_args()
    if args.from_results:
        return args
    import torch

    args.cuda = torch.cuda.is_available()
    if args.tiny:
        args.batch_sizes = [8, 32, 128]
        if not args.corpus:
            from train_throughput import corpus

            Path(args.work).mkdir(parents=True, exist_ok=True)
            args.corpus = corpus(args.work)
    else:
        args.batch_sizes = [8, 16, 32, 64, 128, 256, 512]
    if not args.corpus:
        ap.error("--corpus: required without --tiny (e.g. ../shared/data/tinyshakespeare.txt)")
    return args


def check_run(args, variant, run) -> dict:
    """One B at full steps: its measured job wall against the extrapolation from the short run."""
    work = Path(args.work) / f"{variant}_check"
    shutil.rmtree(work, ignore_errors=True)
    long = run_snakemake(args, variant, work, args.full_steps, [args.check_batch])
    short = next(j for j in run["jobs"] if j["batch_size"] == args.check_batch)
    predicted = extrapolate(run, args.full_steps, 1)["job_full_s"][args.check_batch]
    measured = long["jobs"][0]["job_s"]
    return {"variant": variant, "batch_size": args.check_batch, "steps": args.full_steps,
            "predicted_job_s": predicted, "measured_job_s": measured, "error": predicted / measured - 1,
            "steps_per_s_short": short["steps_per_s"], "steps_per_s_full": long["jobs"][0]["steps_per_s"]}


def loss_agreement(runs: dict) -> list:
    """Final val loss of each default (and fastest) job against the seed-style fp32 job at that B."""
    if "seed" not in runs:
        return []
    ref = {j["batch_size"]: j["final_val_loss"] for j in runs["seed"]["jobs"]}
    out = []
    for variant in (v for v in runs if v != "seed"):
        for j in runs[variant]["jobs"]:
            a, b = j["final_val_loss"], ref[j["batch_size"]]
            out.append({"variant": variant, "batch_size": j["batch_size"], "final_val_loss": a, "fp32": b,
                        "rel_diff": None if a is None or b is None else a / b - 1})
    return out


def table(result: dict) -> str:
    fmt = lambda v, f=".1f": "-" if v is None else format(v, f)  # noqa: E731
    lines = ["| variant | B | job s | " + " | ".join(p[:-2] + " s" for p in PARTS) + " | steps/s |",
             "|---|---|---|" + "---|" * len(PARTS) + "---|"]
    for run in result["runs"].values():
        for j in run["jobs"]:
            lines.append(f"| {run['variant']} | {j['batch_size']} | {fmt(j['job_s'])} | "
                         + " | ".join(fmt(j[p], ".2f") for p in PARTS) + f" | {fmt(j['steps_per_s'])} |")
    lines += ["", "| variant | slots | measured wall s | GPU util % | concurrency | pipeline s | "
              f"full sweep ({result['lrs_full']} lrs x {result['full_steps']} steps) min | overhead share | vs seed |", "|" + "---|" * 9]
    base = result["runs"].get("seed", {}).get("extrapolated", {}).get("sweep_full_s")
    for run in result["runs"].values():
        e = run["extrapolated"]
        lines.append(f"| {run['variant']} | {run['slots']} | {fmt(run['wall_s'])} | {fmt(run['gpu_util_mean_pct'])} | "
                     f"{fmt(e['concurrency'], '.2f')} | {fmt(e['pipeline_s'])} | {fmt(e['sweep_full_s'] / 60, '.2f')} | "
                     f"{fmt(e['overhead_share'], '.3f')} | {fmt(base / e['sweep_full_s'] if base else None, '.2f')}x |")
    for c in result["checks"]:
        lines.append(f"\ncheck {c['variant']} B={c['batch_size']} at {c['steps']} steps: predicted {c['predicted_job_s']:.1f} s, "
                     f"measured {c['measured_job_s']:.1f} s ({c['error']:+.1%})")
    worst = max((abs(a["rel_diff"]) for a in result["loss_agreement"] if a["rel_diff"] is not None), default=None)
    if worst is not None:
        lines.append(f"final val loss vs fp32 seed-style: largest relative difference {worst:.2%}")
    return "\n".join(lines)


def main():
    args = parse_args()
    if args.from_results:
        print(json.dumps(split_of(Path(args.from_results)), indent=1))
        return
    t0 = time.monotonic()
    runs, checks = {}, []
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            raise SystemExit(f"sweep_gpu: --variants: unknown variant {variant!r}; expected {', '.join(VARIANTS)}")
        work = Path(args.work) / variant
        shutil.rmtree(work, ignore_errors=True)  # every variant starts cold: no finished jobs
        run = run_snakemake(args, variant, work, args.steps, args.batch_sizes)
        run["extrapolated"] = extrapolate(run, args.full_steps, args.lrs_full)
        runs[variant] = run
        print(f"{variant}: {run['wall_s']:.1f} s for {len(run['jobs'])} jobs", flush=True)
    for variant in (v for v in args.check.split(",") if v in runs and args.check_batch in args.batch_sizes):
        checks.append(check_run(args, variant, runs[variant]))
    result = {"device": next(iter(runs.values()))["device"], "cuda": args.cuda, "tiny": args.tiny,
              "steps": args.steps, "full_steps": args.full_steps, "lrs_full": args.lrs_full, "lr": args.lr,
              "batch_sizes": args.batch_sizes, "runs": runs, "checks": checks, "loss_agreement": loss_agreement(runs),
              "bench_wall_s": time.monotonic() - t0}
    text = table(result)
    print(f"device: {result['device']}\n{text}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    out.with_suffix(".txt").write_text(f"device: {result['device']}\n{text}\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
