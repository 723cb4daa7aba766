import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace


def _pin_blas_kernel() -> None:
    """The golden files (tests/golden) hold fit.json to 1e-12 and were built with OpenBLAS's SkylakeX
    kernels; the Haswell ones (what OpenBLAS picks on an AMD EPYC, or what OPENBLAS_CORETYPE=Haswell in a
    machine's environment asks for) sum in another order and move ill-conditioned nuisance parameters by up
    to 10% (the reports stay identical). Where the CPU has AVX-512 the kernels are pinned to SkylakeX, whatever
    the environment says, before numpy loads, for this process and every one it starts."""
    cpuinfo = Path("/proc/cpuinfo")
    if "numpy" not in sys.modules and cpuinfo.exists() and " avx512f " in cpuinfo.read_text().replace("\n", " "):
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"


_pin_blas_kernel()

import pytest
import yaml
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Tiers (markers registered in pyproject.toml). A test is `fast` unless marked `slow` (real snakemake
# sweeps, kill -9 and other fault trials on real processes), `slurm` (a real cluster) or `browser`
# (a real chromium): `make check` runs the fast tier, `make test` every tier.
OTHER_TIERS = ("slow", "slurm", "browser")

# Hypothesis: `full` (300 examples a property, derandomized) unless LRSCALE_HYPOTHESIS=fast (make check).
settings.register_profile("full", max_examples=300, derandomize=True, deadline=None,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("fast", settings.get_profile("full"), max_examples=25)
settings.load_profile(os.environ.get("LRSCALE_HYPOTHESIS", "full"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in OTHER_TIERS):
            item.add_marker(pytest.mark.fast)


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


def cli(*args, check=False, env=None, cwd=None):
    """`lrscale ARGS` in this process, through lrscale.cli.main(argv): the same parser, commands and
    one-line errors as the console script without its ~3 s of interpreter and torch start-up. Returns
    a CompletedProcess like lrscale(); what a process of its own would print on stderr lands in
    .stderr: its warnings (Python's default filters) and its log records (WARNING and up).
    os.environ and the working directory are restored afterwards."""
    from lrscale.cli import main

    argv = list(map(str, args))
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    log = logging.StreamHandler(err)
    log.setLevel(logging.WARNING)
    logging.getLogger().addHandler(log)
    code = 0
    try:
        os.environ.update(env or {})
        os.chdir(cwd or saved_cwd)
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            _interpreter_warning_filters()
            try:
                main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        err.writelines(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    finally:
        logging.getLogger().removeHandler(log)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    r = subprocess.CompletedProcess(["lrscale", *argv], code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"lrscale {argv} exited {code}:\n{r.stderr[-3000:]}")
    return r


def _interpreter_warning_filters():
    """The filters a fresh `python` starts with: its defaults, then $PYTHONWARNINGS (plain actions,
    e.g. `always`): what the console script would show."""
    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
    for action in filter(None, os.environ.get("PYTHONWARNINGS", "").split(",")):
        warnings.simplefilter(action)


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


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """The tiny config trained once for the whole session, in this process: B=8 at lrs 0.003 and
    0.01, 16 steps, 2 eval points (both noise probes), aggregated into results.csv. Read-only."""
    root = tmp_path_factory.mktemp("tiny_runs")
    cfg = tiny_config(sweep={"name": "wb", "batch_sizes": [8], "lrs": [0.003, 0.01]}, budget={"value": 128},
                      train={"eval_points": 2})
    path = write_config(root / "c.yaml", cfg)
    metrics = [root / f"runs/B8_LR{lr:.6f}/seed0/metrics.json" for lr in cfg["sweep"]["lrs"]]
    for lr, out in zip(cfg["sweep"]["lrs"], metrics):
        cli("train", "--config", path, "--batch-size", 8, "--lr", lr, "--out", out, "--device", "cpu", check=True)
    cli("aggregate", *metrics, "--out", root / "results.csv", check=True)
    return SimpleNamespace(root=root, cfg=cfg, config=path, metrics=metrics, results=root / "results.csv")


CANARY = "canary" + "7f3a9c" * 6  # a fake secret: must never reach an output
SHARED_BATCH, SHARED_LRS = [8, 16, 32], [0.003, 0.01, 0.03]


@pytest.fixture(scope="session")
def shared_sweep(tmp_path_factory):
    """One finished sweep (3 B x 3 lr) under the real snakemake, run with the canary as WANDB_API_KEY
    and LRSCALE_SECRET in its environment: tests/test_secrets.py scans every file it wrote,
    tests/test_report.py renders its report. Returns its folder, config and the run's output."""
    wd = tmp_path_factory.mktemp("shared_sweep")
    cfg = tiny_config(sweep={"name": "rep", "batch_sizes": SHARED_BATCH, "lrs": SHARED_LRS}, budget={"value": 2048})
    path = write_config(wd / "c.yaml", cfg)
    r = subprocess.run(snakemake_cmd(wd, configfile=path), capture_output=True, text=True, timeout=900,
                       env=tool_env(WANDB_API_KEY=CANARY, LRSCALE_SECRET=CANARY))
    assert r.returncode == 0, r.stderr[-3000:]
    return SimpleNamespace(wd=wd, config=path, run=r)


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
