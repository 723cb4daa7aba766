"""Issue 3: the real `snakemake` on a tiny sweep; the offline W&B run read back from its file."""

import csv
import json
import math
import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import BIN, REPO, read_json, snakemake_cmd, tiny_config, tool_env, write_config
from lrscale import PAGES, PLOTS, config, wandb_file

pytestmark = pytest.mark.slow  # the real snakemake: dry runs, lint and sweeps of the real rules


def snakemake(workdir, *args, configfile=None, check=True, timeout=600):
    r = subprocess.run(snakemake_cmd(workdir, *args, configfile=configfile), capture_output=True, text=True,
                       timeout=timeout, env=tool_env())
    if check and r.returncode != 0:
        raise AssertionError(f"snakemake {args} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}")
    return r


def planned_jobs(workdir, configfile):
    """{rule: count} that a dry run would execute (Snakemake's job stats table)."""
    r = snakemake(workdir, "-n", configfile=configfile)
    out = r.stdout + r.stderr
    counts = {}
    if "Nothing to be done" in out:
        return counts
    table = out.split("Job stats:")[1] if "Job stats:" in out else ""
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One finished tiny sweep (2 B x 3 lr), shared by the read-only tests."""
    wd = tmp_path_factory.mktemp("sweep")
    cfg = tiny_config(sweep={"name": "tiny", "batch_sizes": [8, 32], "lrs": [0.001, 0.003, 0.01], "seeds": [0]})
    path = write_config(wd / "config.yaml", cfg)
    snakemake(wd, configfile=path)
    return wd, path, cfg


# full sweep: every output of the default target exists only once the whole DAG ran
def test_all_outputs_exist(sweep):
    wd, _, _ = sweep
    res = wd / "results" / "tiny"
    for f in ["results.csv", "analysis/fit.json", "analysis/best_per_batch.csv", "analysis/report.md",
              "wandb_run.json", "config.html", *[f"analysis/{p}.png" for p in PLOTS],
              *[f"analysis/{p}.html" for p in PAGES], "analysis/training_curves_B8.png"]:
        assert (res / f).is_file(), f
    assert "noise_vs_batch" in PLOTS
    rows = list(csv.DictReader(open(res / "results.csv")))
    assert len(rows) == 6
    assert [(r["batch_size"], r["lr"]) for r in rows][:3] == [("8", "0.001"), ("8", "0.003"), ("8", "0.01")]
    for col in ["batch_size", "lr", "final_train_loss", "final_val_loss", "train_loss_std", "converged", "num_steps",
                "seed", "diverged", "min_val_loss", "samples_seen", "wall_s"]:
        assert col in rows[0]
    # appended columns, in order: no clip; the last noise probe's numbers (probes are on by default); the end time;
    # passes over the data (empty: teacher_student draws fresh data) and whether the val loss rose past its noise;
    # the budget (the horizon) and its unit
    assert list(rows[0])[-9:] == ["clipped_fraction", "b_simple", "noise_kurtosis", "noise_tail_index", "timestamp",
                                  "epochs", "overfit", "budget", "budget_unit"]
    assert {(r["budget"], r["budget_unit"]) for r in rows} == {("1024", "samples")}
    assert rows[0]["epochs"] == "" and rows[0]["overfit"] in ("True", "False", "")
    assert rows[0]["clipped_fraction"] == "0.0" and float(rows[0]["noise_kurtosis"]) > -3
    assert (res / "logs" / "train" / "B8_LR0.001000_seed0.log").is_file()
    assert (res / "benchmarks" / "train" / "B8_LR0.001000_seed0.tsv").is_file()
    assert not (res / "checkpoints" / "B8_LR0.001000").exists()  # deleted on success


# full sweep: the W&B run as the rule writes it, from the sweep's own metrics and plots
def test_wandb_run_holds_every_key(sweep):
    wd, _, cfg = sweep
    facts = read_json(wd / "results" / "tiny" / "wandb_run.json")
    assert facts["mode"] == "offline" and facts["sync_command"].startswith("wandb sync ")
    run_file = wd / facts["run_file"]  # recorded relative to the workflow directory
    hist = wandb_file.history(run_file)
    info = wandb_file.run_info(run_file)
    assert info["name"] == "tiny" and info["project"] == "lrscale-test"
    assert info["config"]["sweep"]["lrs"] == [0.001, 0.003, 0.01]
    keys = set().union(*hist)
    configs = [(b, lr) for b in (8, 32) for lr in (0.001, 0.003, 0.01)]
    starts = [r for r in hist if "config/experiment_num" in r]
    assert [r["config/experiment_num"] for r in starts] == list(range(1, len(configs) + 1))
    assert [(r["config/batch_size"], r["config/lr"]) for r in starts] == configs
    for b, lr in configs:
        ns = f"B{b}_LR{lr:.6f}"
        rows = [r for r in hist if f"{ns}/val_loss" in r]
        assert len(rows) == 8  # every eval point
        for r in rows:
            for k in ("train_loss", "val_loss", "learning_rate", "step"):
                assert f"{ns}/{k}" in r
            assert r["batch_size"] == b and r["lr"] == lr and r["step"] == r[f"{ns}/step"]
            assert r["val_loss"] == r[f"{ns}/val_loss"]
        for k in ("final_val_loss", "final_train_loss", "converged"):
            assert f"summary/{ns}_{k}" in keys
        summ = [r for r in hist if f"summary/{ns}_final_val_loss" in r]
        assert len(summ) == 1 and summ[0]["summary/batch_size"] == b and summ[0]["summary/lr"] == lr
        assert "summary/final_val_loss" in summ[0] and "summary/final_train_loss" in summ[0]
    assert not any(k.startswith("B") and "/" not in k for k in keys), "junk keys from unescaped dots"
    assert "results._type" in keys  # the wandb.Table of results.csv
    assert any(k.startswith("plots/lr_opt_vs_batch") for k in keys)
    globs = {m.glob_name: m.step_metric for m in wandb_file.metric_definitions(run_file)}
    assert globs["B8_LR0\\.001000/*"] == "B8_LR0\\.001000/step"


# full sweep: the fit rule on real runs (their probes, their metrics files)
def test_fit_outputs_from_the_sweep(sweep):
    wd, _, _ = sweep
    fit = read_json(wd / "results" / "tiny" / "analysis" / "fit.json")
    assert "## Form comparison" in (wd / "results" / "tiny" / "analysis" / "report.md").read_text()
    assert [r["batch_size"] for r in fit["per_batch"]] == [8, 32]
    assert fit["estimator"] == "parabola" and "verdict" in fit
    assert fit["beta"] is None  # 2 batch sizes: no beta, said why
    assert "need at least 3" in fit["verdict"]
    assert "rounds" not in fit and not (wd / "results" / "tiny" / "rounds").exists()  # a fixed grid plans nothing
    # issue 13: per B, the last probe of the run at the swept lr nearest lr_opt
    noise = fit["gradient_noise"]["per_batch"]
    assert [r["batch_size"] for r in noise] == [8, 32]
    for r, row in zip(noise, fit["per_batch"]):
        assert r["lr"] == min((0.001, 0.003, 0.01), key=lambda lr: abs(math.log(lr / row["lr_opt"])))
        probe = read_json(wd / "results/tiny" / config.run_metrics(r["batch_size"], r["lr"], 0))["noise"]["probes"][-1]
        assert r["step"] == probe["step"] and r["kurtosis"] == probe["kurtosis"]
    assert "## Gradient noise" in (wd / "results" / "tiny" / "analysis" / "report.md").read_text()


# full sweep: what snakemake reruns is decided from a finished sweep's files and records
def test_incremental_reruns(sweep, tmp_path):
    src, path, cfg = sweep
    wd = tmp_path / "wd"
    shutil.copytree(src, wd, symlinks=True)
    path = wd / "config.yaml"
    assert planned_jobs(wd, path) == {}
    # deleting one metrics.json reruns exactly that job plus what depends on it
    (wd / "results/tiny/runs/B8_LR0.003000/seed0/metrics.json").unlink()
    assert planned_jobs(wd, path) == {"train": 1, "aggregate": 1, "fit": 1, "wandb_log": 1, "all": 1}
    snakemake(wd, configfile=path)
    # adding an lr runs only the new jobs
    cfg2 = json.loads(json.dumps(cfg))
    cfg2["sweep"]["lrs"].append(0.03)
    write_config(path, cfg2)
    assert planned_jobs(wd, path) == {"train": 2, "aggregate": 1, "fit": 1, "wandb_log": 1, "config_page": 1, "all": 1}
    # changing only the W&B project reruns only the W&B rule (and the report's config page)
    cfg3 = json.loads(json.dumps(cfg))
    cfg3["wandb"]["project"] = "another"
    write_config(path, cfg3)
    assert planned_jobs(wd, path) == {"wandb_log": 1, "config_page": 1, "all": 1}
    # changing a training hyperparameter reruns every training job
    cfg4 = json.loads(json.dumps(cfg))
    cfg4["optimizer"] = {"weight_decay": 0.1}
    write_config(path, cfg4)
    assert planned_jobs(wd, path)["train"] == 6


# full sweep: the aggregate rule's log, on a finished sweep with one metrics file truncated
def test_corrupt_metrics_stops_aggregation_naming_file(sweep, tmp_path):
    src, _, _ = sweep
    wd = tmp_path / "wd"
    shutil.copytree(src, wd, symlinks=True)
    bad = wd / "results/tiny/runs/B32_LR0.010000/seed0/metrics.json"
    bad.write_text(bad.read_text()[:100])
    os.utime(bad, (os.path.getmtime(bad) - 3600,) * 2)  # keep it older than results.csv ...
    (wd / "results/tiny/results.csv").unlink()  # ... and force re-aggregation
    r = snakemake(wd, configfile=wd / "config.yaml", check=False)
    assert r.returncode != 0
    log = (wd / "results/tiny/logs/aggregate.log").read_text()
    assert "B32_LR0.010000/seed0/metrics.json" in log and "not valid JSON" in log
    assert "Traceback" not in log


# full sweep: seed namespaces are the W&B rule's, over the runs of two seeds
def test_multi_seed_namespaces(tmp_path):
    cfg = tiny_config(sweep={"name": "seeds", "batch_sizes": [8], "lrs": [0.003, 0.01], "seeds": [0, 1]},
                      budget={"value": 256}, train={"eval_points": 4})
    path = write_config(tmp_path / "config.yaml", cfg)
    snakemake(tmp_path, configfile=path)
    facts = read_json(tmp_path / "results/seeds/wandb_run.json")
    hist = wandb_file.history(tmp_path / facts["run_file"])
    rows = [r for r in hist if "B8_LR0.003000/val_loss" in r]
    assert len(rows) == 4
    for r in rows:
        mean = (r["B8_LR0.003000_S0/val_loss"] + r["B8_LR0.003000_S1/val_loss"]) / 2
        assert r["B8_LR0.003000/val_loss"] == pytest.approx(mean)
    keys = set().union(*hist)
    assert "summary/B8_LR0.010000_S1_final_val_loss" in keys
    assert len(list(csv.DictReader(open(tmp_path / "results/seeds/results.csv")))) == 4


# full sweep: which rules rerun when W&B is switched off is decided from a finished sweep
def test_wandb_disabled_and_results_do_not_depend_on_it(sweep, tmp_path):
    """The finished sweep (a copy) with W&B switched off: only the W&B rule and the config page rerun,
    no W&B run is written, and the results stay byte for byte."""
    src, _, cfg = sweep
    wd = tmp_path / "wd"
    shutil.copytree(src, wd, symlinks=True)
    res = wd / "results/tiny"
    shutil.rmtree(res / "wandb")
    results = {f: (res / f).read_bytes() for f in ("results.csv", "analysis/fit.json", "analysis/best_per_batch.csv")}
    path = write_config(wd / "config.yaml", {**cfg, "wandb": {**cfg["wandb"], "mode": "disabled"}})
    assert planned_jobs(wd, path) == {"wandb_log": 1, "config_page": 1, "all": 1}
    snakemake(wd, configfile=path)
    assert read_json(res / "wandb_run.json")["mode"] == "disabled"
    assert not (res / "wandb").exists()
    assert {f: (res / f).read_bytes() for f in results} == results


def test_phase2_dry_run_lists_49_train_jobs(tmp_path):
    jobs = planned_jobs(tmp_path, REPO / "config" / "phase_2_batch_sweep.yaml")
    assert jobs["train"] == 49 and "plan_round" not in jobs  # the seed's fixed grid


def test_phase2_adaptive_dry_run_lists_round_one_and_its_plan(tmp_path):
    jobs = planned_jobs(tmp_path, REPO / "config" / "phase_2_adaptive.yaml")
    assert jobs["train"] == 49 and jobs["plan_round"] == 1


def test_default_config_dry_run(tmp_path):
    jobs = planned_jobs(tmp_path, REPO / "config" / "config.yaml")
    cfg = yaml.safe_load(open(REPO / "config" / "config.yaml"))
    s = cfg["sweep"]
    assert jobs["train"] == len(s["batch_sizes"]) * len(s["lrs"]) * len(s["seeds"])


@pytest.mark.parametrize("change,needle", [
    ({"sweep": {"lrs": [1e-7, 2e-7]}}, "1e-07 and 2e-07 both format as 0.000000"),
    ({"sweep": {"lrs": []}}, "sweep.lrs"),
    ({"sweep": {"batch_sizes": [0, 8]}}, "sweep.batch_sizes"),
    ({"sweep": {"name": "../escape"}}, "sweep.name"),
    ({"optimizer": {"name": "lion"}}, "optimizer.name"),
    ({"budget": {"value": "lots"}}, "budget.value"),
    ({"train": {"bogus": 1}}, "train"),
])
def test_bad_config_one_line_error(tmp_path, change, needle):
    cfg = tiny_config()
    for k, v in change.items():
        cfg[k] = {**cfg.get(k, {}), **v}
    path = write_config(tmp_path / "config.yaml", cfg)
    r = snakemake(tmp_path, "-n", configfile=path, check=False)
    assert r.returncode != 0
    lines = [l for l in (r.stdout + r.stderr).splitlines() if "invalid config" in l]
    assert len(lines) == 1 and needle in lines[0] and "config.yaml" in lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_lint_and_snakefmt_clean():
    r = subprocess.run([str(BIN / "snakemake"), "--lint", "--snakefile", str(REPO / "Snakefile"), "--directory", str(REPO)],
                       capture_output=True, text=True, env=tool_env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Lints for" not in r.stdout + r.stderr, r.stdout + r.stderr
    r = subprocess.run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/rules"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dag_build_never_imports_torch(tmp_path):
    code = ("import sys, runpy; sys.argv=['snakemake','-n','--snakefile',%r,'--directory',%r,'--cores','1'];"
            "import snakemake.cli as c\ntry:\n    c.main()\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NOTORCH')") % (str(REPO / "Snakefile"), str(tmp_path))
    r = subprocess.run([str(BIN / "python"), "-c", code], capture_output=True, text=True, timeout=120)
    assert "NOTORCH" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


def test_symlinked_sweep_dir_cannot_escape_results(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "tiny").symlink_to(outside)
    path = write_config(tmp_path / "config.yaml", tiny_config())
    r = snakemake(tmp_path, "-n", configfile=path, check=False)
    assert r.returncode != 0 and "outside results/" in r.stdout + r.stderr


def test_plugin_sees_training_sections_under_snakemake(tmp_path):
    from test_train import RECORDING_PLUGIN

    (tmp_path / "recplug.py").write_text(RECORDING_PLUGIN)
    cfg = tiny_config(sweep={"name": "plug", "batch_sizes": [8], "lrs": [0.01], "seeds": [0]},
                      task={"name": "recplug:build", "record": str(tmp_path / "seen.json")},
                      budget={"value": 64}, train={"eval_points": 2})
    path = write_config(tmp_path / "config.yaml", cfg)
    r = subprocess.run(snakemake_cmd(tmp_path, "results/plug/runs/B8_LR0.010000/seed0/metrics.json",
                                     configfile=path), capture_output=True, text=True, timeout=600,
                       env=tool_env(PYTHONPATH=str(tmp_path)))
    assert r.returncode == 0, r.stderr[-3000:]
    seen = read_json(tmp_path / "seen.json")
    assert sorted(seen) == sorted(["task", "model", "optimizer", "schedule", "budget", "train"])
    assert seen["task"]["record"] == str(tmp_path / "seen.json") and seen["model"]["hidden"] == 16


# full sweep: runs left on disk by a finished sweep must not reach the fit
def test_fit_reads_exactly_the_declared_runs(sweep, tmp_path):
    src, _, cfg = sweep
    wd = tmp_path / "wd"
    shutil.copytree(src, wd, symlinks=True)
    cfg2 = json.loads(json.dumps(cfg))
    cfg2["sweep"]["lrs"] = [0.001, 0.003]  # 0.01 leaves the config; its runs stay on disk
    path = write_config(wd / "config.yaml", cfg2)
    assert planned_jobs(wd, path) == {"aggregate": 1, "fit": 1, "wandb_log": 1, "config_page": 1, "all": 1}
    snakemake(wd, configfile=path)
    assert len(list((wd / "results/tiny/runs").glob("*/seed0/metrics.json"))) == 6
    log = (wd / "results/tiny/logs/fit.log").read_text()
    assert "training curves from 4 metrics files" in log
    fit = read_json(wd / "results/tiny/analysis/fit.json")
    assert all(r["lrs"] == [0.001, 0.003] for r in fit["per_batch"])
