"""Issue 5: a sweep where 3 jobs crash; --keep-going, partial analysis, then re-run. The issue's
sweep had 49 configs (7 x 7); 16 (4 x 4) prove the same (3 crashes, 13 kept, exactly 3 rerun) at a
third of the training jobs."""

import csv
import json
from pathlib import Path

import pytest

from conftest import lrscale, tiny_config, write_config
from test_workflow import planned_jobs, snakemake

pytestmark = pytest.mark.slow  # full sweep: --keep-going, the partial target and the rerun are snakemake's
CRASH = ["B8_LR0.010000", "B32_LR0.000300", "B512_LR0.100000"]  # first row, a middle one, the last config
N = 16


def test_three_crashes_keep_going_partial_then_rerun_exactly_three(tmp_path, monkeypatch):
    cfg = tiny_config(
        sweep={"name": "grid16", "batch_sizes": [8, 32, 128, 512], "lrs": [0.0003, 0.001, 0.01, 0.1],
               "seeds": [0]},
        budget={"unit": "steps", "value": 20}, train={"eval_points": 2}, analysis={"bootstrap": 20},
    )
    path = write_config(tmp_path / "config.yaml", cfg)
    monkeypatch.setenv("LRSCALE_FAULT_CRASH", ",".join(CRASH))  # the test hook: these 3 jobs crash
    r = snakemake(tmp_path, "--keep-going", "--retries", "0", configfile=path, check=False, timeout=900)
    assert r.returncode != 0
    runs = tmp_path / "results" / "grid16" / "runs"
    assert len(list(runs.glob("*/seed0/metrics.json"))) == N - 3
    out = r.stdout + r.stderr
    for name in CRASH:
        assert f"{name}/seed0/metrics.json" in out  # the failures are reported, by run
        assert "injected crash" in (tmp_path / f"results/grid16/logs/train/{name}_seed0.log").read_text()
    assert not (tmp_path / "results/grid16/results.csv").exists()  # no silent partial result
    # `lrscale status` after the crash (issue 14): the three failures by name, with the line that says why
    s = json.loads(lrscale("status", "--directory", tmp_path, "--config", path, "--json", check=True).stdout)
    failed = [j for j in s["jobs"] if j["state"] == "failed"]
    assert sorted(f"B{j['batch_size']}_LR{j['lr']:.6f}" for j in failed) == sorted(CRASH)
    assert all("injected crash" in j["reason"] and Path(j["log"]).exists() for j in failed)
    assert s["totals"]["done"] + s["totals"]["diverged"] == N - 3 and s["totals"]["running"] == 0
    text = lrscale("status", "--directory", tmp_path, "--config", path, check=True).stdout
    assert text.count("✗ B=") == 3 and text.count("log: ") == 3
    # asked for explicitly: a partial analysis from what exists, kept apart
    snakemake(tmp_path, "partial", configfile=path)
    rows = list(csv.DictReader(open(tmp_path / "results/grid16/partial/results.csv")))
    assert len(rows) == N - 3
    assert (tmp_path / "results/grid16/partial/analysis/fit.json").exists()
    # cause fixed: the same command runs exactly those 3 plus aggregation, fit and W&B
    monkeypatch.delenv("LRSCALE_FAULT_CRASH")
    assert planned_jobs(tmp_path, path) == {"train": 3, "aggregate": 1, "fit": 1, "wandb_log": 1, "all": 1}
    snakemake(tmp_path, configfile=path)
    assert len(list(csv.DictReader(open(tmp_path / "results/grid16/results.csv")))) == N
