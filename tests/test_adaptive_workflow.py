"""Issue 11: adaptive rounds under the real snakemake (checkpoint plan_round), on CPU."""

import csv
import os
import signal
import subprocess
import time

import pytest

from conftest import read_json, results_without_timing, snakemake_cmd, tiny_config, tool_env, write_config
from lrscale import wandb_file
from test_workflow import planned_jobs, snakemake

pytestmark = pytest.mark.slow  # rounds exist only under snakemake (checkpoint plan_round)
TOP = 0.0316  # every optimum of this task lies above it (about 0.05-0.1 at 200 steps)
# One batch size (these tests had two, 32 and 128): the planner treats each B alone (test_adaptive.py
# covers several), and the rounds, the kill and the budget are the same with half the jobs.


def adaptive_cfg(name="ad", **adaptive):
    return tiny_config(sweep={"name": name, "batch_sizes": [32], "lrs": [0.001, 0.00316, 0.01, TOP],
                              "seeds": [0, 1], "adaptive": {"rounds": 2, "extend_edges": 2, **adaptive}},
                       budget={"unit": "steps", "value": 200}, train={"eval_points": 4})


@pytest.fixture(scope="module")
def adaptive_sweep(tmp_path_factory):
    wd = tmp_path_factory.mktemp("adaptive")
    path = write_config(wd / "config.yaml", adaptive_cfg())
    snakemake(wd, configfile=path)
    return wd


# full sweep: round 2 is planned from round 1's real runs, then fitted with them
def test_an_optimum_above_the_grid_is_bracketed_and_fitted(adaptive_sweep):
    res = adaptive_sweep / "results" / "ad"
    plan = read_json(res / "rounds" / "round2.json")
    assert len(plan["points"]) == 4 and all(p["reason"].startswith("extend: best lr 0.0316") for p in plan["points"])
    fit = read_json(res / "analysis" / "fit.json")
    for row in fit["per_batch"]:
        assert "edge" not in row["flags"] and row["included"] and row["edge_resolved_by_extension"], row["flags"]
        assert row["lr_opt"] > TOP and row["lr_rounds"] == [1, 1, 1, 1, 2, 2]
    assert fit["rounds"]["n"] == 2 and not fit["rounds"]["budget_reached"]
    assert len(list(csv.DictReader(open(res / "results.csv")))) == 8 + 4
    assert "## Rounds" in (res / "analysis" / "report.md").read_text()
    hist = wandb_file.history(adaptive_sweep / read_json(res / "wandb_run.json")["run_file"])
    nums = [h["config/experiment_num"] for h in hist if "config/experiment_num" in h]
    assert nums == list(range(1, 7))  # 4 grid configs, then the 2 that round 2 added
    assert any(k.startswith("B32_LR0.099928/") for h in hist for k in h)


def test_dry_run_shows_round_one_and_the_checkpoint(tmp_path):
    path = write_config(tmp_path / "config.yaml", adaptive_cfg())
    jobs = planned_jobs(tmp_path, path)
    assert jobs["train"] == 8 and jobs["plan_round"] == 1 and "fit" not in jobs  # later rounds: after round 1
    assert "checkpoint" in snakemake(tmp_path, "-n", configfile=path).stdout


def test_adaptive_off_is_the_fixed_grid(tmp_path):
    path = write_config(tmp_path / "config.yaml", adaptive_cfg(rounds=1))
    jobs = planned_jobs(tmp_path, path)
    assert jobs == {"train": 8, "aggregate": 1, "fit": 1, "wandb_log": 1, "config_page": 1, "all": 1}


# full sweep: killed as round 2 starts, resumed, compared with the uninterrupted sweep
def test_kill_during_round_two_resumes_exactly(adaptive_sweep, tmp_path):
    path = write_config(tmp_path / "config.yaml", adaptive_cfg())
    res = tmp_path / "results" / "ad"
    p = subprocess.Popen(snakemake_cmd(tmp_path, configfile=path), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=tool_env(), start_new_session=True)
    round2_log = res / "logs" / "train" / "B32_LR0.099928_seed0.log"  # the first job round 2 starts
    while not round2_log.exists():
        assert p.poll() is None, "snakemake ended before round 2 started"
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)  # snakemake and every job it started
    p.wait()
    plan = (res / "rounds" / "round2.json").read_bytes()
    round1 = sorted((res / "runs").glob("*/seed*/metrics.json"))
    stamps = {f: f.stat().st_mtime_ns for f in round1}
    snakemake(tmp_path, "--unlock", configfile=path)
    r = snakemake(tmp_path, "--rerun-incomplete", configfile=path)
    assert (res / "rounds" / "round2.json").read_bytes() == plan
    assert {f: f.stat().st_mtime_ns for f in round1} == stamps, "a finished run was trained again"
    assert "plan_round" not in r.stderr.split("Job stats:")[1].split("Reasons")[0]
    ref = adaptive_sweep / "results" / "ad"
    assert results_without_timing(res / "results.csv") == results_without_timing(ref / "results.csv")
    got, want = read_json(res / "analysis" / "fit.json"), read_json(ref / "analysis" / "fit.json")
    assert [r_["lr_opt"] for r_ in got["per_batch"]] == [r_["lr_opt"] for r_ in want["per_batch"]]


# full sweep: the budget is counted over the runs the rounds really made
def test_budget_stops_planning_and_says_so(tmp_path):
    cfg = adaptive_cfg(name="budget", max_runs=5)
    cfg["sweep"].update(batch_sizes=[32], seeds=[0])
    path = write_config(tmp_path / "config.yaml", cfg)
    snakemake(tmp_path, configfile=path)
    res = tmp_path / "results" / "budget"
    assert "budget of 5 runs reached" in (res / "logs" / "plan_round2.log").read_text()
    fit = read_json(res / "analysis" / "fit.json")
    assert fit["rounds"]["budget_reached"] and len(list(csv.DictReader(open(res / "results.csv")))) == 5
