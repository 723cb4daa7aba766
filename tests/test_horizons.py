"""Issue 24.2: a horizon axis (budget.values). Each horizon is the grid run again at that budget:
names B…_LR…/D{horizon}, results.csv's budget column, one fit per horizon, one status grid per
horizon, every horizon's curves in the one W&B run. A one-horizon sweep is named as it always was."""

import csv
import json
import math
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import REPO, lrscale, read_json, snakemake_cmd, tiny_config, tool_env, write_config
from lrscale import PLOTS, config, metrics, status, wandb_file, wandb_log
from lrscale.analysis.sweep_table import read_table
from lrscale.errors import UserError

LRS = [0.001, 0.003, 0.01, 0.03]


def test_values_resolve_to_sorted_horizons_and_one_value_is_budget_value():
    cfg = config.validate(tiny_config_without_value(values=[4096, 1024, 2048]))
    assert config.horizons(cfg) == [1024, 2048, 4096] and cfg["budget"]["value"] == 4096
    assert config.validate(cfg) == cfg  # the resolved config validates again (jobs get it as JSON)
    points = config.grid(cfg)
    assert len(points) == 3 * 2 * 2 and points[0]["horizon"] == 1024 and points[0]["name"] == "B8_LR0.001000/D1024"
    one = config.validate(tiny_config_without_value(values=[2048]))
    same = config.validate(tiny_config_without_value(value=2048))
    assert config.horizons(one) == [None] and one == same  # one value: a one-horizon sweep, named as ever
    assert config.grid(one)[0] == {"batch_size": 8, "lr": 0.001, "seed": 0, "name": "B8_LR0.001000"}
    # a horizon's runs carry the training config (and hash) a one-horizon sweep at that budget has
    assert config.config_hash(config.at_horizon(cfg, 2048)) == config.config_hash(same)


def tiny_config_without_value(**budget):
    cfg = tiny_config()
    cfg["budget"] = budget
    return cfg


@pytest.mark.parametrize("budget, expected", [
    ({"values": [1024, 2048], "value": 512}, "key 'budget.values': given with budget.value 512"),
    ({"values": [1024, 1024]}, "key 'budget.values'"),
    ({"values": []}, "key 'budget.values'"),
    ({"values": [0, 5]}, "key 'budget.values.0'"),
])
def test_bad_values_are_one_line_errors(budget, expected):
    with pytest.raises(UserError, match=re.escape(expected)) as e:
        config.validate(tiny_config_without_value(**budget), source="c.yaml")
    assert "\n" not in str(e.value) and str(e.value).startswith("c.yaml: ")


def test_several_horizons_with_adaptive_rounds_are_refused(tmp_path):
    cfg = tiny_config_without_value(values=[1024, 2048])
    cfg["sweep"]["adaptive"] = {"rounds": 2}
    path = write_config(tmp_path / "c.yaml", cfg)
    r = lrscale("status", "--config", path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "key 'budget.values': several horizons with sweep.adaptive.rounds 2" in r.stderr


def test_names_and_paths_carry_the_horizon():
    assert config.run_name(8, 0.01) == "B8_LR0.010000"
    assert config.run_name(8, 0.01, 1024) == "B8_LR0.010000/D1024"
    assert config.run_metrics(8, 0.01, 0, 1024) == "runs/B8_LR0.010000/D1024/seed0/metrics.json"
    assert config.run_path(config.RUN_LOG, 8, 0.01, 1, 1024) == "logs/train/B8_LR0.010000/D1024_seed1.log"
    pattern = metrics.schema()["properties"]["name"]["pattern"]
    assert re.match(pattern, "B8_LR0.010000/D1024") and re.match(pattern, "B8_LR0.010000")
    assert not re.match(pattern, "B8_LR0.010000/D") and not re.match(pattern, "B8_LR0.010000/1024")


def _csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["batch_size", "lr", "final_val_loss", "seed", "diverged", "budget"])
        w.writerows(rows)
    return path


def _two_horizons(path):
    rows = [(b, lr, 1 + (lr - 0.01 * b / 8 / d * 1024) ** 2, 0, False, d)
            for d in (1024, 4096) for b in (8, 16, 32) for lr in LRS]
    return _csv(path, rows)


def test_fit_reads_one_horizon_of_a_csv_with_several(tmp_path):
    path = _two_horizons(tmp_path / "results.csv")
    with pytest.raises(UserError, match=r"column 'budget' holds 2 horizons \(1024, 4096\); expected one: pass --horizon"):
        read_table(path)
    sweep = read_table(path, horizon=4096)
    assert sorted(sweep.lrs) == [8, 16, 32] and all(len(v) == len(LRS) for v in sweep.lrs.values())
    assert set(sweep.table["budget"]) == {"4096"}
    with pytest.raises(UserError, match="--horizon 99: no run has budget 99; expected one of 1024, 4096"):
        read_table(path, horizon=99)


def test_fit_cli_horizon_errors_exit_2(tmp_path):
    path = _two_horizons(tmp_path / "results.csv")
    r = lrscale("fit", path, "--out", tmp_path / "a")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "pass --horizon" in r.stderr
    assert not (tmp_path / "a").exists()
    r = lrscale("fit", path, "--horizon", "0")
    assert r.returncode == 2 and "--horizon" in r.stderr
    r = lrscale("fit", path, "--horizon", "1024", "--out", tmp_path / "a", "--bootstrap", "20")
    assert r.returncode == 0, r.stderr
    assert read_json(tmp_path / "a" / "fit.json")["input"]["horizon"] == 1024


def _metrics_file(root, b, lr, horizon, loss):
    path = root / config.run_metrics(b, lr, 0, horizon)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"diverged": False, "final_val_loss": loss}))


def test_status_draws_one_grid_per_horizon(tmp_path):
    cfg = config.validate(tiny_config_without_value(values=[2048, 1024]))
    root = tmp_path / "results/tiny"
    _metrics_file(root, 8, 0.001, 1024, 0.5)
    _metrics_file(root, 8, 0.01, 1024, 0.4)
    _metrics_file(root, 8, 0.001, 2048, 0.3)
    s = status.collect(cfg, root)
    assert s["totals"]["done"] == 3 and s["totals"]["pending"] == 5
    assert {(j["lr"], j["horizon"]) for j in s["jobs"] if j["state"] == "done"} == {(0.001, 1024), (0.01, 1024),
                                                                                 (0.001, 2048)}
    text = status.render(s)
    lines = text.splitlines()
    assert lines[0].endswith(": 2 horizons")
    d1024, d2048 = lines.index(next(ln for ln in lines if ln.startswith("D1024: "))), lines.index(
        next(ln for ln in lines if ln.startswith("D2048: ")))
    assert d1024 < d2048
    assert "0.4 ★" in lines[d1024 + 2] and "0.3 ★" in lines[d2048 + 2]  # each horizon's own best


def test_status_of_one_horizon_is_unchanged(tmp_path):
    cfg = config.validate(tiny_config())
    text = status.render(status.collect(cfg, tmp_path / "results/tiny"))
    assert text.splitlines()[0].startswith("sweep tiny (") and "2 batch sizes x 2 lrs" in text.splitlines()[0]


def test_wandb_logs_each_horizon_under_its_own_namespace():
    cfg = config.validate(tiny_config_without_value(values=[1024, 2048]))
    curve = {"step": [1, 2], "samples_seen": [8, 16], "train_loss": [1.0, 0.9], "val_loss": [1.1, 1.0],
             "learning_rate": [0.01, 0.01]}
    runs = [{"batch_size": 8, "lr": 0.001, "seed": 0, "horizon": h, "name": config.run_name(8, 0.001, h),
             "curves": curve, "final_val_loss": 1.0, "final_train_loss": 0.9, "converged": True}
            for h in (2048, 1024)]
    namespaces, calls = wandb_log.build_log_calls(cfg, runs)
    assert namespaces == ["B8_LR0.001000/D1024", "B8_LR0.001000/D2048"]
    starts = [c for c in calls if "config/experiment_num" in c]
    assert [c["config/horizon"] for c in starts] == [1024, 2048]
    assert "summary/B8_LR0.001000/D2048_final_val_loss" in calls[-1]
    views = wandb_log.horizon_views(runs)
    assert "views/D1024/B8_val_loss_by_lr" in views and "views/D2048/final_val_loss_heatmap" in views


@pytest.mark.slow
def test_a_two_horizon_sweep_end_to_end(tmp_path):
    """The real snakemake: every run at both horizons, one fit each, the W&B run holds both; a run at
    a horizon is the run a one-horizon sweep at that budget makes (same hash, same losses)."""
    cfg = tiny_config_without_value(unit="samples", values=[2048, 1024])
    cfg["sweep"] = {"name": "hz", "batch_sizes": [8, 16, 32], "lrs": LRS, "seeds": [0]}
    path = write_config(tmp_path / "config.yaml", cfg)
    r = subprocess.run(snakemake_cmd(tmp_path, configfile=path), capture_output=True, text=True, timeout=600,
                       env=tool_env())
    assert r.returncode == 0, r.stderr[-3000:]
    res = tmp_path / "results/hz"
    rows = list(csv.DictReader(open(res / "results.csv")))
    assert len(rows) == 24 and {r["budget"] for r in rows} == {"1024", "2048"}
    assert rows[0]["name"] == "B8_LR0.001000/D1024" and rows[-1]["name"] == "B32_LR0.030000/D2048"
    for h in (1024, 2048):
        fit = read_json(res / f"analysis/D{h}/fit.json")
        assert fit["input"]["horizon"] == h and [r["batch_size"] for r in fit["per_batch"]] == [8, 16, 32]
        assert all((res / f"analysis/D{h}/{p}.png").is_file() for p in PLOTS)
    assert not (res / "analysis/fit.json").exists()  # no fit mixes the horizons
    summary = read_json(res / "analysis/horizons.json")  # how lr_opt moves with D: the horizons' summary
    assert summary["horizons"] == [1024, 2048] and summary["sentence"] in (res / "analysis/horizons.md").read_text()
    assert all({"b_simple_median", "b_noise", "b_noise_ci95"} <= set(p) for p in summary["per_horizon"])
    assert any(p["b_simple_median"] is not None for p in summary["per_horizon"])  # read from each horizon's fit.json
    assert (res / "analysis/lr_opt_by_horizon.png").is_file() and (res / "analysis/b_crit.png").is_file()
    steps = {(r["batch_size"], r["budget"]): int(r["num_steps"]) for r in rows}
    assert steps[("8", "1024")] == 128 and steps[("8", "2048")] == 256 and steps[("32", "2048")] == 64

    facts = read_json(res / "wandb_run.json")
    hist = wandb_file.history(tmp_path / facts["run_file"])
    keys = set().union(*hist)
    assert {"B8_LR0.001000/D1024/val_loss", "B8_LR0.001000/D2048/val_loss"} <= keys
    assert any(k.startswith("plots/D1024/lr_opt_vs_batch") for k in keys)
    assert any(k.startswith("plots/D2048/lr_opt_vs_batch") for k in keys)
    assert any(k.startswith("plots/lr_opt_by_horizon") for k in keys) and any(k.startswith("plots/b_crit") for k in keys)
    assert {"horizons/beta_D1024", "horizons/beta_D2048"} <= keys  # the horizons' summary (found by the rule's command)

    # the same run, standalone at budget 2048 (lrscale train, as a one-horizon sweep would run it)
    alone = write_config(tmp_path / "alone.yaml", {**cfg, "budget": {"unit": "samples", "value": 2048}})
    out = tmp_path / "alone/metrics.json"
    lrscale("train", "--config", alone, "--batch-size", 16, "--lr", 0.01, "--out", out, "--device", "cpu", check=True)
    solo, branch = read_json(out), read_json(res / config.run_metrics(16, 0.01, 0, 2048))
    assert branch["name"] == "B16_LR0.010000/D2048" and branch["horizon"] == 2048 and "horizon" not in solo
    assert branch["config_hash"] == solo["config_hash"]
    assert branch["curves"]["val_loss"] == solo["curves"]["val_loss"]
    assert branch["final_val_loss"] == solo["final_val_loss"]

    r = lrscale("status", "--config", path, "--directory", tmp_path)
    assert r.returncode == 0 and "D1024: 3 batch sizes x 4 lrs" in r.stdout and "D2048: 3 batch sizes" in r.stdout
    assert "done 24" in r.stdout

    # the HTML report: the horizons' plot, and a front page that links only what the report holds
    r = subprocess.run(snakemake_cmd(tmp_path, "--report", tmp_path / "report.html", configfile=path),
                       capture_output=True, text=True, timeout=600, env=tool_env())
    assert r.returncode == 0 and "ERROR" not in r.stderr, r.stderr[-2000:]
    page = (tmp_path / "report.html").read_text()
    assert "lr_opt_by_horizon.png" in page and "Horizons 1024, 2048" in page


# ------------------------------------------------------------------ wsd: horizons branched from one stable phase
def _wsd_config(**schedule):
    cfg = tiny_config_without_value(unit="samples", values=[2048, 1024])
    cfg["schedule"] = {"name": "wsd", **schedule}
    return cfg


def test_branching_needs_a_horizon_free_warmup():
    with pytest.raises(UserError, match=r"key 'schedule.warmup_steps': wsd with several horizons branches") as e:
        config.validate(_wsd_config(), source="c.yaml")
    assert "\n" not in str(e.value)
    assert config.branched(config.validate(_wsd_config(warmup_steps=5)))
    assert config.branched(config.validate(_wsd_config(warmup_fraction=0.0)))
    assert not config.branched(config.validate(tiny_config_without_value(values=[1024, 2048])))  # cosine: no branches
    cfg = _wsd_config(warmup_steps=5)
    cfg["optimizer"] = {"name": "adamw", "weight_decay": 0.1,
                        "scale_with_batch": {"reference_batch_size": 8, "reference_lr": 0.01, "weight_decay": True}}
    with pytest.raises(UserError, match=r"key 'optimizer.scale_with_batch.weight_decay': its decay depends"):
        config.validate(cfg)


def test_stable_needs_a_branched_config_and_a_branch_its_own_snapshot(tmp_path):
    plain = write_config(tmp_path / "plain.yaml", tiny_config())
    r = lrscale("stable", "--config", plain, "--batch-size", 8, "--lr", 0.01, "--out-dir", tmp_path / "s")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "expected schedule.name wsd and budget.values" in r.stderr
    wsd = write_config(tmp_path / "wsd.yaml", _wsd_config(warmup_steps=5))
    lrscale("stable", "--config", wsd, "--batch-size", 8, "--lr", 0.01, "--out-dir", tmp_path / "s", "--device", "cpu",
            check=True)
    assert sorted(p.name for p in (tmp_path / "s").glob("*.pt")) == ["D1024.pt", "D2048.pt"]
    assert not (tmp_path / "s/.checkpoint").exists()  # cleaned once the snapshots are written
    r = lrscale("train", "--config", wsd, "--batch-size", 8, "--lr", 0.03, "--horizon", 1024, "--out", tmp_path / "m.json",
                "--branch-from", tmp_path / "s/D1024.pt", "--device", "cpu")  # another lr's snapshot
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "a snapshot of another stable phase" in r.stderr
    assert not (tmp_path / "m.json").exists()
    r = lrscale("train", "--config", wsd, "--batch-size", 8, "--lr", 0.01, "--horizon", 1024, "--out", tmp_path / "m.json",
                "--branch-from", tmp_path / "s/D2048.pt", "--device", "cpu")  # another horizon's snapshot
    assert r.returncode == 2 and "the snapshot of horizon 2048; expected 1024's" in r.stderr
    for flags, expected in ((["--horizon", 999, "--branch-from", tmp_path / "s/D1024.pt"], "--branch-from needs one of"),
                            (["--horizon", 1024, "--branch-from", tmp_path / "none.pt"], "no such stable-phase snapshot")):
        r = lrscale("train", "--config", wsd, "--batch-size", 8, "--lr", 0.01, "--out", tmp_path / "m.json", *flags,
                    "--device", "cpu")
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and expected in r.stderr, r.stderr
    r = lrscale("stable", "--config", wsd, "--batch-size", 8, "--lr", -1, "--out-dir", tmp_path / "s2", "--device", "cpu")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--lr" in r.stderr
    (tmp_path / "bad.pt").write_bytes(b"not a snapshot")
    r = lrscale("train", "--config", wsd, "--batch-size", 8, "--lr", 0.01, "--horizon", 1024, "--out", tmp_path / "m.json",
                "--branch-from", tmp_path / "bad.pt", "--device", "cpu")
    assert r.returncode == 2 and "not a readable stable-phase snapshot" in r.stderr


WSD_LRS = [0.003, 0.03, 100.0]  # the last diverges in the stable phase, before either cool-down
TIMING = {"wall_s", "steps_per_s", "samples_per_s", "tokens_per_s", "timing", "finished_at", "resumed_from_step",
          "peak_memory_mb", "startup_s"}


@pytest.mark.slow
def test_wsd_horizons_branch_from_one_stable_phase_and_equal_standalone_runs(tmp_path):
    """One stable phase per (B, lr, seed), one cool-down per horizon; every branched run's metrics
    equal a standalone WSD run of its horizon (timing aside), a diverged one included; a crashed
    cool-down reruns alone."""
    cfg = _wsd_config(warmup_steps=5)
    cfg["sweep"] = {"name": "br", "batch_sizes": [8, 16], "lrs": WSD_LRS, "seeds": [0]}
    path = write_config(tmp_path / "config.yaml", cfg)
    crash = {"LRSCALE_FAULT_CRASH": "B16_LR0.030000/D1024"}
    r = subprocess.run(snakemake_cmd(tmp_path, "--keep-going", configfile=path), capture_output=True, text=True,
                       timeout=600, env={**tool_env(), **crash})
    assert r.returncode != 0
    res = tmp_path / "results/br"
    assert not (res / config.run_metrics(16, 0.03, 0, 1024)).exists()
    assert (res / config.run_metrics(16, 0.03, 0, 2048)).exists()  # its sibling branch finished
    jobs = subprocess.run(snakemake_cmd(tmp_path, "-n", configfile=path), capture_output=True, text=True,
                          timeout=600, env=tool_env()).stdout
    assert re.search(r"^cooldown\s+1$", jobs, re.M) and not re.search(r"^stable_phase\s", jobs, re.M)
    r = subprocess.run(snakemake_cmd(tmp_path, configfile=path), capture_output=True, text=True, timeout=600,
                       env=tool_env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list(res.glob("runs/*/stable/seed0/D*.pt"))) == 12  # 6 stable phases x 2 horizons

    for h in (1024, 2048):
        alone = write_config(tmp_path / f"alone{h}.yaml", {**cfg, "budget": {"unit": "samples", "value": h}})
        for b in (8, 16):
            for lr in WSD_LRS:
                out = tmp_path / f"alone/{h}/B{b}_{lr}.json"
                lrscale("train", "--config", alone, "--batch-size", b, "--lr", lr, "--out", out, "--device", "cpu",
                        check=True)
                solo, branch = read_json(out), read_json(res / config.run_metrics(b, lr, 0, h))
                # it started from its snapshot, unless its stable phase diverged first (it then trained alone)
                assert (branch["resumed_from_step"] is None) == (lr == 100.0)
                assert branch["name"] == f"{solo['name']}/D{h}" and branch["horizon"] == h
                differ = {k for k in set(solo) | set(branch) if solo.get(k) != branch.get(k)} - TIMING - {"name", "horizon"}
                assert not differ, (h, b, lr, differ)
                assert branch["diverged"] == (lr == 100.0)
    rows = list(csv.DictReader(open(res / "results.csv")))
    assert len(rows) == 12 and {r["budget"] for r in rows} == {"1024", "2048"}


# ------------------------------------------------------------------ across horizons (issue 24.3)
def _fit_like(horizon, beta, gamma, batch_sizes=(8, 16, 32, 64, 128), se_log10=0.02, jitter=None):
    """A fit.json's keys the summary reads: per-B optima on lr_opt = 0.01·(B/8)^β·(D/1000)^−γ."""
    rows = []
    for i, b in enumerate(batch_sizes):
        lr = 0.01 * (b / 8) ** beta * (horizon / 1000) ** -gamma * (10 ** jitter[i] if jitter is not None else 1)
        rows.append({"batch_size": b, "lr_opt": lr, "lr_opt_se_across_b_log10": se_log10, "included": True,
                     "lr_opt_ci95": [lr / 1.1, lr * 1.1], "lrs": [lr / 10, lr, lr * 10]})
    return {"per_batch": rows, "answer": {"beta": beta, "ci95": [beta - 0.05, beta + 0.05], "estimator": "surface"},
            "verdict": "Answer: …", "n_used": len(rows), "input": {"horizon": horizon}}


def test_joint_fit_recovers_beta_and_gamma_and_flags_a_drifting_beta():
    from lrscale.analysis import horizons

    rng = np.random.default_rng(0)
    fits = {d: _fit_like(d, 0.5, 0.3, jitter=rng.normal(0, 0.02, 5)) for d in (1000, 4000, 16000)}
    s = horizons.summarize(fits)
    j = s["joint"]
    assert j["beta_ci95"][0] < 0.5 < j["beta_ci95"][1] and j["gamma_ci95"][0] < 0.3 < j["gamma_ci95"][1]
    assert abs(j["beta"] - 0.5) < 0.03 and abs(j["gamma"] - 0.3) < 0.03 and j["dof"] == 15 - 4 and j["gamma_dof"] == 1
    assert not j["beta_changes"] and s["sentence"].startswith("γ rests on 3 horizons (1 dof): its CI is wide")  # first
    assert "Across 3 horizons: β = " in s["sentence"]
    flat = horizons.summarize({d: _fit_like(d, 0.5, 0.0, jitter=rng.normal(0, 0.02, 5)) for d in (1000, 4000, 16000)})
    lo, hi = flat["joint"]["gamma_ci95"]
    assert lo < 0 < hi and "lr_opt does not move with the horizon beyond its CI" in flat["sentence"]
    rising = horizons.summarize({d: _fit_like(d, 0.5, -0.3, jitter=rng.normal(0, 0.02, 5)) for d in (1000, 4000, 16000)})
    assert "lr_opt rises with the horizon (γ < 0)" in rising["sentence"]
    drift = {d: _fit_like(d, b, 0.3, jitter=rng.normal(0, 0.02, 5)) for d, b in ((1000, 0.3), (4000, 0.5), (16000, 0.7))}
    s = horizons.summarize(drift)
    assert s["joint"]["beta_changes"] and "β changes with the horizon beyond its CI" in s["sentence"]


def test_summary_says_why_there_is_no_joint_fit_and_names_horizons_without_a_beta():
    from lrscale.analysis import horizons

    one = _fit_like(1000, 0.5, 0.3, batch_sizes=(8, 16))
    other = _fit_like(4000, 0.5, 0.3, batch_sizes=(8,))
    other["answer"] = {"beta": None, "ci95": None, "estimator": "per_batch"}
    s = horizons.summarize({1000: one, 4000: other})
    assert s["joint"]["beta"] is None and "need 2+ of each and 6+ optima" in s["joint"]["reason"]
    assert s["sentence"].startswith("D = 4,000: no β of its own")  # the caveat first
    assert "| 4,000 | — | — |" in horizons.markdown(s)


def test_a_horizon_whose_verdict_is_not_decided_lists_no_beta():
    from lrscale.analysis import horizons

    fits = {d: _fit_like(d, 0.5, 0.3) for d in (1000, 4000, 16000)}
    fits[4000]["answer"]["untested"] = "bend"  # its fit has a β, its verdict reads "not decided: lr_opt bends"
    s = horizons.summarize(fits)
    assert [p["beta"] for p in s["per_horizon"]] == [0.5, None, 0.5] and s["per_horizon"][1]["ci95"] is None
    assert s["sentence"].startswith("D = 4,000: no β of its own (its report says why); the fit across horizons still "
                                    "reads every horizon's per-B optima. ") and s["joint"]["beta"] is not None


def test_horizons_cli_writes_the_summary_and_rejects_a_fit_of_every_row(tmp_path):
    paths = []
    rng = np.random.default_rng(1)
    for d in (1000, 4000):
        paths.append(tmp_path / f"D{d}.json")
        paths[-1].write_text(json.dumps(_fit_like(d, 0.5, 0.3, jitter=rng.normal(0, 0.02, 5))))
    lrscale("horizons", *paths, "--out", tmp_path / "out", check=True)
    summary = read_json(tmp_path / "out/horizons.json")
    assert summary["horizons"] == [1000, 4000] and summary["joint"]["beta"] is not None
    assert (tmp_path / "out/lr_opt_by_horizon.png").stat().st_size > 10_000
    assert (tmp_path / "out/b_crit.png").is_file()  # without --results: it says B_crit was not measured
    assert "| horizon D | β (its own fit)" in (tmp_path / "out/horizons.md").read_text()
    whole = json.loads(paths[0].read_text())
    whole["input"]["horizon"] = None
    (tmp_path / "whole.json").write_text(json.dumps(whole))
    r = lrscale("horizons", tmp_path / "whole.json", paths[1], "--out", tmp_path / "out2")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "key 'input.horizon': null" in r.stderr
    (tmp_path / "runs.csv").write_text("batch_size,lr,final_val_loss\n8,0.01,1.0\n")
    r = lrscale("horizons", *paths, "--results", tmp_path / "runs.csv", "--out", tmp_path / "out3")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "missing column(s) ['num_steps', 'budget']" in r.stderr
    r = lrscale("horizons", paths[0], paths[0], "--out", tmp_path / "out3")
    assert r.returncode == 2 and "two fits of the same horizon" in r.stderr
    (tmp_path / "bad.json").write_text("{")
    r = lrscale("horizons", tmp_path / "bad.json", "--out", tmp_path / "out2")
    assert r.returncode == 2 and "not an lrscale fit.json" in r.stderr and not (tmp_path / "out2").exists()


def _closed_form_results(path):
    """results.csv of 5 horizons where the best lr's steps to any loss are S_min·(1 + 64/B)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["batch_size", "lr", "final_val_loss", "seed", "diverged", "num_steps", "budget"])
        for d in (2**14, 2**15, 2**16, 2**17, 2**18):
            for b in (8, 16, 32, 64, 128, 256, 512):
                steps = -(-d // b)
                for lr, worse in ((0.001, 0.05), (0.003, 0.0), (0.01, 0.02)):
                    w.writerow([b, lr, 1 + (steps / (1 + 64 / b)) ** -0.5 + worse, 0, False, steps, d])
    return path


def test_critical_batch_from_the_steps_each_batch_size_needs(tmp_path):
    """A closed form where the steps to any loss are S_min·(1 + 64/B) (loss = 1 + (S/(1 + 64/B))^−½ for
    the best lr): B_crit's CI holds 64 at every target; a sweep with too few batch sizes says why."""
    from lrscale.analysis.horizons import critical_batch

    path = _closed_form_results(tmp_path / "results.csv")
    crit = critical_batch(path)
    assert len(crit["targets"]) == 3
    for t in crit["targets"]:
        assert t["ci95"][0] < 64 < t["ci95"][1] and abs(math.log(t["b_crit"] / 64)) < 0.1
    rows = [r for r in csv.DictReader(open(path)) if r["batch_size"] in ("8", "16")]
    with open(tmp_path / "two.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert critical_batch(tmp_path / "two.csv") == {
        "targets": [], "reason": "2 batch sizes have a finite best loss at every horizon (need 3)"}


def test_b_crit_is_drawn_and_tabled_beside_its_proxies(tmp_path, monkeypatch):
    """b_crit.png: the steps each B needs per target, B_crit's CI shaded around the true 64, the
    proxies as grey lines, batch ticks at the batch sizes and plain step ticks (read back from
    matplotlib); horizons.md tables B_simple and B_noise per horizon next to B_crit."""
    from lrscale.analysis import critical_batch, horizons, plots

    seen = {}
    real = plots._save

    def spy(fig, path):
        fig.canvas.draw()
        seen[os.path.basename(path).removesuffix(".png")] = fig.axes[0]
        real(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    summary = {"per_horizon": [{"horizon": 2**18, "b_simple_median": 100.0, "b_noise": 40.0, "b_noise_ci95": [20.0, None]}],
               "critical_batch": horizons.critical_batch(_closed_form_results(tmp_path / "results.csv"))}
    assert all(t["batch_sizes"] == [8, 16, 32, 64, 128, 256, 512] and len(t["steps"]) == 7
               for t in summary["critical_batch"]["targets"])
    plots.b_crit(summary, tmp_path / "b_crit.png")
    ax = seen["b_crit"]
    lo, hi = ax.get_xlim()
    assert [t.get_text() for t, v in zip(ax.xaxis.get_ticklabels(), ax.xaxis.get_ticklocs()) if lo <= v <= hi] == [
        "8", "16", "32", "64", "128", "256", "512"]
    steps_labels = [t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text()]
    assert steps_labels and not [t for t in steps_labels if any(c in t for c in ("×", "times", "e+", "10^"))]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(legend) == 5 and legend[3].startswith("B_simple = 100") and legend[4].startswith("B_noise = 40")
    shaded = [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches]  # each target's CI band, around 64
    assert len(shaded) == 3 and all(lo < 64 < hi for lo, hi in shaded)
    text = "\n".join(horizons._proxy_lines(summary["per_horizon"]))
    assert "| 262,144 | 100 | 40 [20, open] |" in text
    three = critical_batch.fit_b_crit([8, 64, 512], [900.0, 200.0, 110.0])  # no dof left: no CI, still a curve
    assert three["dof"] == 0 and "knee_exponent" in three
    plots.b_crit({"critical_batch": {"targets": [{"target_loss": 1.1, **three, "batch_sizes": [8, 64, 512],
                                                  "steps": [900.0, 200.0, 110.0]}]}}, tmp_path / "three.png")
    assert "[open, open] (no dof left for the CI)" in seen["three"].get_legend().get_texts()[0].get_text()
    assert len(seen["three"].get_lines()) >= 3  # the points, the fitted curve, B_crit's dashed line
    plots.b_crit({"critical_batch": {"targets": [], "reason": "2 batch sizes"}}, tmp_path / "none.png")
    assert (tmp_path / "none.png").stat().st_size > 5_000  # says why there is none


@pytest.mark.slow
def test_kill9_of_a_stable_phase_resumes_with_the_snapshots_it_passed(tmp_path):
    """kill -9 of snakemake while a stable phase runs, after it passed its first horizon's cool-down:
    the rerun resumes it from its checkpoint (not from step 0), keeps the snapshot it had written, and
    both branches still equal standalone runs."""
    cfg = _wsd_config(warmup_steps=5)
    cfg["budget"] = {"unit": "samples", "values": [32768, 131072]}  # B = 8: 4096 and 16384 steps
    cfg["sweep"] = {"name": "k9", "batch_sizes": [8], "lrs": [0.01], "seeds": [0]}
    path = write_config(tmp_path / "config.yaml", cfg)
    env = {**tool_env(), "LRSCALE_CHECKPOINT_EVERY_S": "0.2"}
    target = "results/k9/results.csv"
    kept = tmp_path / "results/k9/checkpoints/B8_LR0.010000/stable/seed0"
    p = subprocess.Popen(snakemake_cmd(tmp_path, target, configfile=path), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not ((kept / "D32768.pt").is_file() and (kept / "checkpoint.pt").is_file()):  # the event: both written
            assert p.poll() is None and time.monotonic() < deadline, "the stable phase ended before it could be killed"
            time.sleep(0.05)
    finally:
        os.killpg(p.pid, signal.SIGKILL)  # snakemake and every job it started
        p.wait()
    assert not (tmp_path / "results/k9/runs/B8_LR0.010000/stable/seed0/D131072.pt").exists()
    subprocess.run(snakemake_cmd(tmp_path, "--unlock", configfile=path), capture_output=True, env=env, check=True)
    r = subprocess.run(snakemake_cmd(tmp_path, "--rerun-incomplete", target, configfile=path), capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    log = (tmp_path / "results/k9" / config.STABLE_LOG.format(batch=8, lr="0.010000", seed=0)).read_text()
    assert "resumed from step" in log and "restarting the stable phase" not in log
    for h in (32768, 131072):
        alone = write_config(tmp_path / f"alone{h}.yaml", {**cfg, "budget": {"unit": "samples", "value": h}})
        out = tmp_path / f"alone{h}/metrics.json"
        lrscale("train", "--config", alone, "--batch-size", 8, "--lr", 0.01, "--out", out, "--device", "cpu", check=True)
        solo, branch = read_json(out), read_json(tmp_path / "results/k9" / config.run_metrics(8, 0.01, 0, h))
        differ = {k for k in set(solo) | set(branch) if solo.get(k) != branch.get(k)} - TIMING - {"name", "horizon"}
        assert not differ, (h, differ)


@pytest.mark.slow
def test_the_slurm_profile_dry_runs_the_horizon_rules_with_their_resources(tmp_path):
    cfg = _wsd_config(warmup_steps=5)
    cfg["sweep"] = {"name": "sl", "batch_sizes": [8, 16], "lrs": [0.003, 0.03], "seeds": [0]}
    path = write_config(tmp_path / "config.yaml", cfg)
    r = subprocess.run(snakemake_cmd(tmp_path, "-n", "--profile", REPO / "profiles/slurm", configfile=path, cores=None),
                       capture_output=True, text=True, timeout=300, env=tool_env())
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert re.search(r"^stable_phase\s+4$", out, re.M) and re.search(r"^cooldown\s+8$", out, re.M)
    assert re.search(r"^horizons\s+1$", out, re.M)
    stable = out[out.index("rule stable_phase"):]
    assert "gpu=1" in stable[:2000] and "cpus_per_task=1" in stable[:2000]  # set-resources reach the new rules


def test_wandb_keys_of_the_horizons_summary():
    from lrscale.analysis import horizons

    rng = np.random.default_rng(2)
    summary = horizons.summarize({d: _fit_like(d, 0.5, 0.3, jitter=rng.normal(0, 0.02, 5)) for d in (1000, 4000)})
    summary["critical_batch"] = {"targets": [{"target_loss": 1.05, "b_crit": 64.0, "ci95": [50.0, 80.0]},
                                             {"target_loss": 1.04, "b_crit": None, "reason": "edge"}]}
    keys = wandb_log.horizon_keys(summary)
    assert keys["horizons/beta"] == summary["joint"]["beta"] and keys["horizons/beta_D4000"] == 0.5
    # two horizons: γ is measured but has no CI (how whole horizons scatter needs a third)
    assert math.isnan(keys["horizons/gamma_ci95_low"]) and math.isnan(keys["horizons/gamma_ci95_high"])
    assert summary["joint"]["gamma_ci95"] is None and "γ has no CI: 2 groups for 1 covariate" in summary["sentence"]
    three = horizons.summarize({d: _fit_like(d, 0.5, 0.3, jitter=rng.normal(0, 0.02, 5)) for d in (1000, 4000, 16000)})
    keys3 = wandb_log.horizon_keys(three)
    assert keys3["horizons/gamma_ci95_low"] < keys3["horizons/gamma"] < keys3["horizons/gamma_ci95_high"]
    assert keys["horizons/b_crit_1"] == 64.0 and keys["horizons/b_crit_2"] != keys["horizons/b_crit_2"]  # NaN: none
    assert (keys["horizons/b_crit_1_ci95_low"], keys["horizons/b_crit_1_ci95_high"]) == (50.0, 80.0)
    assert math.isnan(keys["horizons/b_crit_2_ci95_low"])


@pytest.mark.slow
@pytest.mark.parametrize("name, stable, horizons", [("budget_demo", 108, 3),  # 6 B x 9 lrs x 2 seeds
                                                    ("b_crit_label_noise", 84, 5)])  # 7 B x 6 lrs x 2 seeds
def test_the_bench_configs_dry_run_as_one_stable_phase_per_point(tmp_path, name, stable, horizons):
    """config/budget_demo.yaml (issue 24.6's demonstration) and config/b_crit_label_noise.yaml (24.4's
    label-noise check), both run by bench/budget_demo.py."""
    r = subprocess.run(snakemake_cmd(tmp_path, "-n", configfile=REPO / f"config/{name}.yaml"), capture_output=True,
                       text=True, timeout=300, env=tool_env())
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert re.search(rf"^stable_phase\s+{stable}$", out, re.M) and re.search(rf"^cooldown\s+{stable * horizons}$", out, re.M)
    assert re.search(rf"^fit_horizon\s+{horizons}$", out, re.M) and not re.search(r"^train\s", out, re.M)


def test_status_counts_the_shared_stable_phases(tmp_path):
    cfg = config.validate(_wsd_config(warmup_steps=5))  # tiny_config: B 8, 32 x lr 0.001, 0.01, one seed
    root = tmp_path / "results/tiny"
    at = lambda pattern, b, lr: root / pattern.format(batch=b, lr=config.lr_name(lr), seed=0)  # noqa: E731
    done = at(config.STABLE_DIR, 8, 0.001)
    done.mkdir(parents=True)
    for h in (1024, 2048):
        (done / config.SNAPSHOT.format(horizon=h)).write_bytes(b"x")
    running_log = at(config.STABLE_LOG, 8, 0.01)
    running_log.parent.mkdir(parents=True, exist_ok=True)
    running_log.write_text("[lrscale train] B8_LR0.010000 stable phase seed 0: ...\n")
    progress = at(config.STABLE_DIR, 8, 0.01) / "progress.json"
    progress.parent.mkdir(parents=True)
    progress.write_text(json.dumps({"state": "running", "pct": 40, "step": 40, "steps": 100}))
    failed_log = at(config.STABLE_LOG, 32, 0.001)
    failed_log.parent.mkdir(parents=True)
    failed_log.write_text("Traceback (most recent call last):\n  ...\nRuntimeError: boom\n")
    s = status.collect(cfg, root)
    assert s["stable_phases"] == {"done": 1, "running": 1, "failed": 1, "pending": 1, "running_pct": [40],
                                  "left_s": 0.0, "pending_s": [None]}  # nothing says how long a phase takes yet
    assert "stable phases (shared by the horizons): done 1 · running 1 · failed 1 · pending 1 ▶40%" in status.render(s)
    assert s["eta_s"] is None
    assert status.collect(config.validate(tiny_config()), root)["stable_phases"] is None  # not a branched sweep

    # the ETA counts the stable phases: the running one's pace (40 of 100 steps in 40 s: 60 s left), the
    # pending one as long as the finished phase took (its benchmark file: 100 s), and the pending cool-downs
    bench = at(config.STABLE_BENCHMARK, 8, 0.001)
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\n100.0\t0:01:40\n")
    progress.write_text(json.dumps({"state": "running", "pct": 40, "step": 40, "steps": 100, "start_step": 0,
                                    "elapsed_s": 40.0}))
    cooldowns = status.points_of(cfg, root)
    for p in cooldowns[2:]:  # all but two cool-downs finished, 10 s each
        metrics = root / config.run_path(config.RUN_METRICS, p["batch_size"], p["lr"], p["seed"], p["horizon"])
        metrics.parent.mkdir(parents=True, exist_ok=True)
        metrics.write_text(json.dumps({"diverged": False, "final_val_loss": 1.0, "wall_s": 10.0}))
    s = status.collect(cfg, root, now=progress.stat().st_mtime)
    assert s["stable_phases"]["left_s"] == pytest.approx(60.0) and s["stable_phases"]["pending_s"] == [100.0]
    assert s["totals"]["pending"] == 2 and s["eta_s"] == pytest.approx(60.0 + 100.0 + 2 * 10.0)  # one job running


def _snapshot_tensors(path):
    import torch

    state = torch.load(path, weights_only=False)
    return state["step"], state["model"], state["step_loss"], state["reference_loss"]


@pytest.mark.slow
def test_a_stable_phase_that_lost_a_passed_snapshot_restarts_from_fresh_weights(tmp_path):
    """SIGTERM checkpoints a stable phase past its first snapshot; that snapshot is then lost (a kill
    between the phase's move of its snapshots and its clean-up): the rerun starts again from step 0
    with fresh weights, and its snapshots equal an uninterrupted phase's."""
    import torch

    wsd = write_config(tmp_path / "wsd.yaml", {**_wsd_config(warmup_steps=5),
                                               "budget": {"unit": "samples", "values": [32768, 131072]}})
    args = ["stable", "--config", wsd, "--batch-size", 8, "--lr", 0.01, "--device", "cpu"]
    lrscale(*args, "--out-dir", tmp_path / "clean", check=True, timeout=600)
    ckpt = tmp_path / "ckpt"
    p = subprocess.Popen([str(REPO / ".venv/bin/lrscale"), *map(str, args), "--out-dir", tmp_path / "cut",
                          "--checkpoint-dir", ckpt], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env={**tool_env(), "LRSCALE_CHECKPOINT_EVERY_S": "1000"})
    deadline = time.monotonic() + 300
    while not (ckpt / "D32768.pt").is_file():  # the event: the first snapshot is written
        assert p.poll() is None and time.monotonic() < deadline, "the stable phase ended before its first snapshot"
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)  # checkpoint at the next step boundary, then exit
    assert "preempted at step" in p.communicate(timeout=120)[1]
    assert (ckpt / "checkpoint.pt").is_file()
    (ckpt / "D32768.pt").unlink()  # lost
    r = lrscale(*args, "--out-dir", tmp_path / "cut", "--checkpoint-dir", ckpt, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "restarting the stable phase from step 0" in r.stderr + r.stdout
    for h in (32768, 131072):
        (s1, m1, l1, ref1), (s2, m2, l2, ref2) = (_snapshot_tensors(tmp_path / d / f"D{h}.pt") for d in ("clean", "cut"))
        assert s1 == s2 and ref1 == ref2 and torch.equal(l1, l2)
        assert all(torch.equal(m1[k], m2[k]) for k in m1)


def test_an_exponent_ci_too_wide_to_say_anything_reads_unbounded():
    # the budget demo's label-noise sweep printed "δ [-43117537.313, 43117537.834]" (2 horizons with optima)
    from lrscale.analysis import horizons as horizons_analysis

    assert horizons_analysis._ci([-43117537.313, 43117537.834]) == "(unbounded CI)"
    assert horizons_analysis._ci([-0.55, 0.451]) == "[-0.550, 0.451]" and horizons_analysis._ci(None) == "(no CI)"
