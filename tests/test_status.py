"""Issue 14.2: `lrscale status` reads results/<sweep>/ alone: every state from real files, a real
sweep running in the background, and nothing written while it looks. Issue 22: a job's progress
comes from its progress.json (an earlier run's set aside), its log's lines only for older jobs."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import lrscale, snakemake_cmd, tiny_config, tool_env, write_config
from lrscale import config, status

LRS = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]


def _write(root, pattern, b, lr, seed, text, age_s=0.0):
    path = root / config.run_path(pattern, b, lr, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if age_s:
        t = time.time() - age_s
        os.utime(path, (t, t))
    return path


def _progress(pct, done, steps, elapsed):
    """A log's progress line, as an lrscale that wrote no progress file left it."""
    return f"[lrscale train] B8: {pct}% (step {done}/{steps}, val_loss 0.5, {elapsed} s since step 0)\n"


def _progress_file(root, b, lr, seed, done, steps, elapsed, next_step, state="running", age_s=0.0, **extra):
    """A job's progress.json as lrscale.train writes it (tests/test_progress.py checks that shape)."""
    record = {"state": state, "run": config.run_name(b, lr), "step": done, "steps": steps, "pct": 100 * done // steps,
              "val_loss": 0.5, "start_step": 0, "elapsed_s": elapsed, "since_last_s": 1.0, "next_step": next_step,
              "written_at": time.time() - age_s, **extra}
    return _write(root, config.RUN_PROGRESS, b, lr, seed, json.dumps(record), age_s)


def test_every_state_from_the_files(tmp_path):
    cfg = config.validate(tiny_config(sweep={"name": "st", "batch_sizes": [8], "lrs": LRS, "seeds": [0]}))
    root = tmp_path / "results/st"
    M, L, BM = config.RUN_METRICS, config.RUN_LOG, config.RUN_BENCHMARK
    _write(root, M, 8, 0.001, 0, json.dumps({"diverged": False, "final_val_loss": 0.30}))
    _write(root, BM, 8, 0.001, 0, "s\th:m:s\n40.0\t0:00:40\n")
    _write(root, M, 8, 0.003, 0, json.dumps({"diverged": False, "final_val_loss": 0.20}))
    _write(root, M, 8, 0.3, 0, json.dumps({"diverged": True, "final_val_loss": None}))
    _write(root, L, 8, 0.01, 0, "Traceback (most recent call last):\n  ...\nInjectedCrash: boom\n")
    _write(root, L, 8, 0.03, 0, "[lrscale train] B8_LR0.030000 seed 0: 1000 steps\n", age_s=5)
    _progress_file(root, 8, 0.03, 0, 300, 1000, 6.0, 320)  # 50 steps/s: 14 s left
    _write(root, L, 8, 0.1, 0, "[lrscale train] B8_LR0.100000 seed 0: 1000 steps\n", age_s=3601)
    _progress_file(root, 8, 0.1, 0, 100, 1000, 2.0, 200, age_s=3600)  # the next point due 2 s later, an hour ago
    s = status.collect(cfg, root)
    states = {j["lr"]: j["state"] for j in s["jobs"]}
    assert states == {0.001: "done", 0.003: "done", 0.3: "diverged", 0.01: "failed", 0.03: "running", 0.1: "stalled"}
    running = next(j for j in s["jobs"] if j["state"] == "running")
    assert running["pct"] == 30 and 10 < running["eta_s"] <= 14
    failed = next(j for j in s["jobs"] if j["state"] == "failed")
    assert failed["reason"] == "InjectedCrash: boom" and failed["log"].endswith("logs/train/B8_LR0.010000_seed0.log")
    assert s["totals"] == {"done": 2, "diverged": 1, "running": 1, "stalled": 1, "failed": 1, "pending": 0}
    assert s["wandb"] == {"written": False, "project": "lrscale-test", "name": "st", "mode": "offline"}
    text = status.render(s)
    assert "0.2 ★" in text and "0.3 " in text and "▶30%" in text and "div" in text
    assert "✗ B=8 lr=0.01 seed 0: InjectedCrash: boom" in text and f"log: {failed['log']}" in text
    assert "stalled B=8 lr=0.1 seed 0: no progress for 1 h 00 min" in text
    assert "\x1b[" not in text and "\x1b[1;31m" in status.render(s, colour=True)


def test_the_progress_file_decides_and_an_earlier_runs_is_set_aside(tmp_path):
    cfg = config.validate(tiny_config(sweep={"name": "st", "batch_sizes": [8], "lrs": LRS, "seeds": [0]}))
    root, L = tmp_path / "results/st", config.RUN_LOG
    # a job started by an lrscale that wrote no progress file: its log's lines, as before
    _write(root, L, 8, 0.001, 0, _progress(30, 300, 1000, 6.0))
    # a job just restarted (its log rewritten) beside the progress file of its killed earlier run: set aside
    _progress_file(root, 8, 0.003, 0, 400, 1000, 8.0, 420, age_s=60)
    _write(root, L, 8, 0.003, 0, "[lrscale train] B8_LR0.003000 seed 0: 1000 steps\n")
    # ... and one whose earlier run had finished: set aside too (the new log is the job's)
    _progress_file(root, 8, 0.01, 0, 1000, 1000, 20.0, None, state="done", age_s=60)
    _write(root, L, 8, 0.01, 0, "")
    # a finished run's files, its metrics.json removed to rerun it: pending, not running
    _write(root, L, 8, 0.03, 0, "[lrscale train] wrote m/metrics.json\n", age_s=10)
    _progress_file(root, 8, 0.03, 0, 1000, 1000, 20.0, None, state="done", age_s=5)
    # a loop that failed and left its progress file the last word: failed, with its error
    _write(root, L, 8, 0.1, 0, "[lrscale train] B8_LR0.100000 seed 0: 1000 steps\n", age_s=10)
    _progress_file(root, 8, 0.1, 0, 100, 1000, 2.0, 120, state="failed", age_s=5, error="RuntimeError: bug")
    # a progress file that is not one (damaged): the job runs, at 0% for now
    _write(root, L, 8, 0.3, 0, "", age_s=10)
    _write(root, config.RUN_PROGRESS, 8, 0.3, 0, "{not json")
    jobs = {j["lr"]: j for j in status.collect(cfg, root)["jobs"]}
    assert {lr: j["state"] for lr, j in jobs.items()} == {
        0.001: "running", 0.003: "running", 0.01: "running", 0.03: "pending", 0.1: "failed", 0.3: "running"}
    assert [jobs[lr]["pct"] for lr in (0.001, 0.003, 0.01, 0.3)] == [30, 0, 0, 0]
    assert jobs[0.1]["reason"] == "RuntimeError: bug"


def test_pending_only_and_eta_from_finished_jobs(tmp_path):
    cfg = config.validate(tiny_config(sweep={"name": "st", "batch_sizes": [8], "lrs": [0.001, 0.01], "seeds": [0, 1]}))
    root = tmp_path / "results/st"
    s = status.collect(cfg, root)
    assert "nothing run yet" in status.render(s)
    # an earlier run's finished log, its metrics.json removed to rerun it: pending, not running
    _write(root, config.RUN_LOG, 8, 0.01, 0, _progress(100, 1000, 1000, 20.0) + "[lrscale train] wrote m/metrics.json\n")
    s = status.collect(cfg, root)
    assert s["totals"]["pending"] == 4 and s["eta_s"] is None  # nothing finished: no duration to go by
    assert "ETA: unknown" in status.render(s)
    _write(root, config.RUN_METRICS, 8, 0.001, 0, json.dumps({"diverged": False, "final_val_loss": 0.3}))
    _write(root, config.RUN_BENCHMARK, 8, 0.001, 0, "s\th:m:s\n10.0\t0:00:10\n")
    s = status.collect(cfg, root)
    assert s["eta_s"] == 30.0  # three jobs of 10 s, one after another (none running)
    assert "0.3 ★ 1/2" in status.render(s)  # seeds collapsed, with a count
    # a packed member restored within its invocation: a benchmark of 1 s, its training's 50 s in metrics.json
    _write(root, config.RUN_METRICS, 8, 0.001, 1, json.dumps({"diverged": False, "final_val_loss": 0.3, "wall_s": 50.0}))
    _write(root, config.RUN_BENCHMARK, 8, 0.001, 1, "s\th:m:s\n1.0\t0:00:01\n")
    assert status.collect(cfg, root)["eta_s"] == 60.0  # two jobs of median(10, 50) = 30 s, not of 5.5 s


@pytest.mark.slow  # a real snakemake sweep in the background
def test_a_real_sweep_seen_while_it_runs(tmp_path):
    cfg = tiny_config(sweep={"name": "live", "batch_sizes": [8], "lrs": [0.003, 0.01], "seeds": [0]},
                      budget={"unit": "steps", "value": 30000}, train={"eval_points": 4})
    (tmp_path / "config").mkdir()
    path = write_config(tmp_path / "config" / "config.yaml", cfg)
    proc = subprocess.Popen(snakemake_cmd(tmp_path, "results/live/results.csv", configfile=path, cores=1),
                            env=tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        seen, deadline = None, time.monotonic() + 600
        while seen is None and proc.poll() is None and time.monotonic() < deadline:
            s = status.collect(config.load(path), tmp_path / "results/live")
            seen = next((j for j in s["jobs"] if j["state"] == "running" and j["pct"] >= 10), None)
            time.sleep(0.2)  # polling interval only: the loop waits for the event, bounded by the deadline
        assert seen is not None, "no job was ever seen running with progress"
        assert s["totals"]["pending"] + s["totals"]["done"] == 1  # one job at a time (--cores 1)
        assert s["eta_s"] is not None and seen["eta_s"] is not None  # from finished jobs, or the running one's pace
        assert not (tmp_path / "results/live" / config.run_metrics(8, seen["lr"], 0)).exists()
        assert (tmp_path / "results/live" / config.run_path(config.RUN_PROGRESS, 8, seen["lr"], 0)).exists()
        assert proc.wait(timeout=900) == 0, proc.stderr.read()[-3000:]
    finally:
        proc.kill()
    before = sorted(p for p in tmp_path.rglob("*"))
    r = lrscale("status", "--directory", tmp_path, "--json", check=True)
    after = json.loads(r.stdout)
    assert after["totals"]["done"] == 2 and after["eta_s"] == 0.0
    for lr in (0.003, 0.01):  # each job's last word: its final state, once its metrics.json was written
        progress = json.loads((tmp_path / "results/live" / config.run_path(config.RUN_PROGRESS, 8, lr, 0)).read_text())
        assert progress["state"] == "done" and progress["pct"] == 100
    r = lrscale("status", "--directory", tmp_path, "--sweep", "live", check=True)
    assert "ETA: finished" in r.stdout and "★" in r.stdout and r.stderr == ""
    assert sorted(p for p in tmp_path.rglob("*")) == before  # it looked; it wrote nothing, took no lock


def test_bad_flags_are_one_line_errors(tmp_path):
    (tmp_path / "config").mkdir()
    write_config(tmp_path / "config" / "config.yaml", tiny_config(sweep={"name": "x"}))
    for args, needle in [(["--sweep", "nope"], "no "), (["--watch", "0"], "--watch"),
                         (["--config", "config/config.yaml", "--sweep", "y"], "--sweep y")]:
        r = lrscale("status", "--directory", tmp_path, *args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr
    assert Path(tmp_path / "results").exists() is False
