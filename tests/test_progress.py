"""Issue 22: a training job's progress as data (progress.json beside metrics.json, written by
lrscale.train.Progress, read by `lrscale status`), and the schemas as package data (an installed,
non-editable lrscale validates a config)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO, tiny_config
from lrscale import config, metrics as metrics_io, status, train
from lrscale.errors import Preempted


def cfg(**sections):
    return config.validate(tiny_config(**sections))


def _record_progress(monkeypatch, out):
    """Every progress.json the job writes, in order, each with whether metrics.json existed then."""
    writes, real = [], train.atomic_write_json

    def spy(path, obj):
        if path == config.progress_path(out):
            writes.append({**obj, "metrics_existed": out.exists()})
        real(path, obj)

    monkeypatch.setattr(train, "atomic_write_json", spy)
    return writes


def _plugin(tmp_path, monkeypatch, module, body):
    """A teacher_student task (in a module of its own name) whose loss runs `body` at its 20th training call."""
    (tmp_path / f"{module}.py").write_text(
        "import signal, torch\n"
        "from dataclasses import replace\n"
        "from lrscale.tasks import teacher_student\n"
        "def build(cfg, seed, device):\n"
        "    task, calls = teacher_student(cfg, seed, device), [0]\n"
        "    def loss(model, x, y):\n"
        "        if torch.is_grad_enabled():\n"
        "            calls[0] += 1\n"
        "            if calls[0] == 20:\n"
        f"                {body}\n"
        "        return task.loss(model, x, y)\n"
        "    return replace(task, loss=loss)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return cfg(task={"name": f"{module}:build"})


# ---------------------------------------------------------------- the one definition of the path
def test_the_progress_path_is_derived_from_one_name(tmp_path):
    metrics = tmp_path / config.run_metrics(8, 0.01, 0)
    assert config.progress_path(metrics) == tmp_path / config.run_path(config.RUN_PROGRESS, 8, 0.01, 0)
    assert config.progress_path(metrics).name == config.PROGRESS_FILE
    assert config.RUN_METRICS.startswith(config.RUN_DIR) and config.RUN_PROGRESS.startswith(config.RUN_DIR)


# ---------------------------------------------------------------- what the job writes
def test_the_job_writes_its_progress_then_its_final_state(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run" / "metrics.json"
    writes = _record_progress(monkeypatch, out)
    c = cfg(budget={"unit": "steps", "value": 50}, train={"eval_points": 5})
    m = train.train(c, 8, 0.01, 0, out, device="cpu", threads=1)
    log = capsys.readouterr().err
    assert "10% (step 5/50" in log and "100% (step 50/50" in log  # the lines for people stay
    running, final = writes[:-1], writes[-1]
    evals, tenths = train.eval_steps(50, 5), list(range(5, 51, 5))
    assert [w["state"] for w in running] == ["running"] * len(running) and running
    steps = [w["step"] for w in running]
    assert steps == sorted(set(steps)) and set(tenths) <= set(steps) <= set(evals) | set(tenths)
    for w, nxt in zip(running, steps[1:] + [None]):
        assert w["steps"] == 50 and w["pct"] == 2 * w["step"] and w["start_step"] == 0 and w["run"] == "B8_LR0.010000"
        assert w["next_step"] == nxt and w["since_last_s"] >= 0 and w["elapsed_s"] >= w["since_last_s"]
        assert not w["metrics_existed"]
        evals_so_far = len([s for s in evals if s <= w["step"]])
        assert w["val_loss"] == (m["curves"]["val_loss"][evals_so_far - 1] if evals_so_far else None)
    assert final["state"] == "done" and final["metrics_existed"]  # written once metrics.json is
    assert final["step"] == 50 and final["pct"] == 100 and final["final_val_loss"] == m["final_val_loss"]
    on_disk = json.loads(config.progress_path(out).read_text())
    assert on_disk == {k: v for k, v in final.items() if k != "metrics_existed"}
    assert not [k for k in metrics_io.read(out) if "progress" in k]  # metrics.json is what it was
    assert sorted(p.name for p in out.parent.iterdir()) == ["metrics.json", "progress.json"]


def test_status_reads_what_the_job_writes(tmp_path, monkeypatch):
    out = tmp_path / "m.json"
    writes = _record_progress(monkeypatch, out)
    train.train(cfg(budget={"unit": "steps", "value": 40}, train={"eval_points": 4}), 8, 0.01, 0, out, device="cpu")
    mid = next(w for w in writes if w["step"] == 20)
    root, point = tmp_path / "results/st", {"batch_size": 8, "lr": 0.01, "seed": 0}
    log = root / config.run_path(config.RUN_LOG, 8, 0.01, 0)
    log.parent.mkdir(parents=True)
    log.write_text("[lrscale train] B8_LR0.010000 seed 0: 40 steps on cpu (fp32), 4 eval points\n")
    progress = root / config.run_path(config.RUN_PROGRESS, 8, 0.01, 0)
    progress.parent.mkdir(parents=True)
    progress.write_text(json.dumps({k: v for k, v in mid.items() if k != "metrics_existed"}))
    t = time.time()
    os.utime(log, (t - 1, t - 1))
    j = status.job_state(root, point, t, {None: None})
    assert j["state"] == "running" and j["pct"] == 50 and j["eta_s"] is not None
    final = {k: v for k, v in writes[-1].items() if k != "metrics_existed"}
    progress.write_text(json.dumps(final))  # metrics.json removed to rerun the job: pending, as before
    assert status.job_state(root, point, time.time(), {None: None})["state"] == "pending"


def test_an_earlier_runs_progress_file_goes_when_the_job_starts(tmp_path):
    out = tmp_path / "m.json"
    config.progress_path(out).write_text(json.dumps({"state": "done", "step": 40, "steps": 40}))
    train.check_args(8, 0.01, out)
    assert not config.progress_path(out).exists()


def test_a_diverged_job_says_so(tmp_path, monkeypatch):
    out = tmp_path / "m.json"
    writes = _record_progress(monkeypatch, out)
    m = train.train(cfg(), 8, 100.0, 0, out, device="cpu")
    assert m["diverged"] and writes[-1]["state"] == "diverged" and writes[-1]["metrics_existed"]
    assert writes[-1]["step"] == m["diverged_at_step"] == m["num_steps"]


def test_a_failed_loop_leaves_failed(tmp_path, monkeypatch):
    c = _plugin(tmp_path, monkeypatch, "progress_fails", "raise RuntimeError('task bug')")
    out = tmp_path / "m.json"
    with pytest.raises(RuntimeError, match="task bug"):
        train.train(c, 8, 0.01, 0, out, device="cpu")
    p = json.loads(config.progress_path(out).read_text())
    assert p["state"] == "failed" and p["error"] == "RuntimeError: task bug" and p["step"] == 19
    assert not out.exists()


def test_a_preempted_loop_leaves_preempted(tmp_path, monkeypatch):
    c = _plugin(tmp_path, monkeypatch, "progress_preempted", "signal.raise_signal(signal.SIGTERM)")
    out = tmp_path / "m.json"
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Preempted):
        train.train(c, 8, 0.01, 0, out, device="cpu")
    assert signal.getsignal(signal.SIGTERM) is before
    p = json.loads(config.progress_path(out).read_text())
    assert p["state"] == "preempted" and p["step"] == 20 and "rerun to resume" in p["error"]


def test_an_unwritable_progress_file_is_one_warning_not_a_failure(tmp_path, capsys):
    out = tmp_path / "m.json"
    (config.progress_path(out) / "blocker").mkdir(parents=True)  # a directory where the file goes
    m = train.train(cfg(), 8, 0.01, 0, out, device="cpu")
    assert out.exists() and m["diverged"] is False
    err = capsys.readouterr().err
    assert err.count("warning: progress not recorded") == 1 and "Traceback" not in err


# ---------------------------------------------------------------- the schemas as package data
@pytest.mark.slow
def test_a_non_editable_install_validates_a_config(tmp_path):
    """pip installs a copy of the project (not editable, no build isolation, no index) into a
    directory of its own; that copy, imported without this checkout on its path, finds its schemas
    and validates config/config.yaml to the same config, defaults filled, as this checkout does."""
    src, site = tmp_path / "src", tmp_path / "site"
    src.mkdir()
    shutil.copy(REPO / "pyproject.toml", src)
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                        "--target", str(site), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in (site / "lrscale" / "schemas").iterdir()) == [
        "config.schema.yaml", "fit.schema.yaml", "metrics.schema.yaml"]
    probe = ("import json, sys, lrscale.config as c, lrscale.metrics as m\n"
             "assert c.__file__.startswith(sys.argv[1]), c.__file__\n"
             "assert m.schema()['properties'] and c.load_schema('fit.schema.yaml')['properties']\n"
             "import lrscale.analysis.fit as f\n"  # the subpackage installs too
             "assert f.__file__.startswith(sys.argv[1]), f.__file__\n"
             "print(json.dumps(c.load(sys.argv[2])))\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = subprocess.run([sys.executable, "-c", probe, str(site), str(REPO / "config" / "config.yaml")],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout) == config.load(REPO / "config" / "config.yaml")
    assert "noise_probes" not in yaml.safe_load((REPO / "config" / "config.yaml").read_text())["train"]
    assert json.loads(r.stdout)["train"]["noise_probes"] == config.defaults()["train"]["noise_probes"]  # filled in
