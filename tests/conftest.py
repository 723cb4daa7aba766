import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tiny_config(**sections):
    """A seconds-fast teacher_student config; override sections by keyword."""
    cfg = {
        "sweep": {"name": "tiny", "batch_sizes": [8, 32], "lrs": [0.001, 0.01], "seeds": [0]},
        "task": {"name": "teacher_student", "input_dim": 8, "teacher_hidden": 16, "val_size": 256},
        "model": {"hidden": 16, "depth": 1},
        "budget": {"unit": "samples", "value": 1024},
        "train": {"eval_points": 8},
        "wandb": {"project": "lrscale-test"},
        "analysis": {"bootstrap": 50},
    }
    for k, v in sections.items():
        cfg[k] = {**cfg.get(k, {}), **v}
    return cfg


def write_config(path, cfg):
    path = Path(path)
    path.write_text(yaml.safe_dump(cfg))
    return path


def make_corpus(path, n_chars=20000, seed=0):
    """A small deterministic pseudo-English corpus (tests never need the real TinyShakespeare)."""
    import random

    rng = random.Random(seed)
    words = ["the", "king", "shall", "speak", "to", "thee", "and", "my", "lord", "of", "york", "now", "is"]
    out, n = [], 0
    while n < n_chars:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9))).capitalize() + ".\n"
        out.append(line)
        n += len(line)
    Path(path).write_text("".join(out)[:n_chars])
    return path


def lrscale(*args, check=False, timeout=300, env=None, **kw):
    """Run the real console script; returns CompletedProcess with text output."""
    e = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", **(env or {})}
    r = subprocess.run([str(BIN / "lrscale"), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=e, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"lrscale {args} exited {r.returncode}:\n{r.stderr[-3000:]}")
    return r


def tool_env(**extra):
    """Environment for the real tools: this venv's scripts first on PATH, W&B offline."""
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "WANDB_MODE": "offline", **extra}


def snakemake_cmd(workdir, *args, configfile=None, cores=2):
    """The real snakemake on this repo's Snakefile in `workdir`; --configfile last (it takes nargs+)."""
    cmd = [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--cores", str(cores)] if cores else []
    return cmd + list(map(str, args)) + (["--configfile", str(configfile)] if configfile else [])


def results_without_timing(path):
    """results.csv rows without the columns that differ between two runs of the same jobs: the
    clock (wall_s, steps_per_s) and when each job ended (timestamp)."""
    import csv

    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in ("wall_s", "steps_per_s", "timestamp")} for r in csv.DictReader(f)]


def read_json(path):
    return json.loads(Path(path).read_text())


@pytest.fixture
def cfg_file(tmp_path):
    return write_config(tmp_path / "config.yaml", tiny_config())


def record_reliability(family, name, trials, survived, runs_lost=0, note=""):
    """Append one row to $LRSCALE_RELIABILITY_JSON (docs/RELIABILITY.md is rendered from it)."""
    path = os.environ.get("LRSCALE_RELIABILITY_JSON")
    if not path:
        return
    import fcntl

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps({"family": family, "name": name, "trials": trials, "survived": survived,
                            "runs_lost": runs_lost, "note": note}) + "\n")
