"""Issue 5: the SLURM profile on a real single-node cluster (munge, MariaDB, slurmdbd, slurmctld,
slurmd) brought up by tests/slurm/cluster.sh. Never skipped: no cluster = a loud failure."""

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import (  # noqa: E402
    BIN, REPO, read_json, results_without_timing, snakemake_cmd, tiny_config, tool_env, write_config)

pytestmark = pytest.mark.slurm
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("slurm")
    subprocess.run(["bash", str(CLUSTER), "install"], check=True, timeout=900)
    up = subprocess.run(["bash", str(CLUSTER), "up", str(state)], capture_output=True, text=True, timeout=300)
    if up.returncode != 0:
        subprocess.run(["bash", str(CLUSTER), "down", str(state)], timeout=60)
        pytest.fail(f"could not bring up the SLURM test cluster:\n{up.stdout[-2000:]}\n{up.stderr[-3000:]}")
    yield state
    subprocess.run(["bash", str(CLUSTER), "down", str(state)], timeout=120)


def env(**extra):
    return tool_env(SLURM_CONF="/etc/slurm/slurm.conf", **extra)


def snakemake_slurm(workdir, configfile, *args, extra_env=None, timeout=400, background=False):
    # If sacct ever fails the plugin hangs and ignores SIGTERM: always under `timeout -k`.
    cmd = ["timeout", "-k", "30", str(timeout),
           *snakemake_cmd(workdir, "--profile", REPO / "profiles" / "slurm", *args, configfile=configfile, cores=None)]
    if background:  # own session: the test can SIGKILL snakemake and `timeout` together
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                                env=env(**(extra_env or {})), start_new_session=True)
    return subprocess.run(cmd, capture_output=True, text=True, env=env(**(extra_env or {})), timeout=timeout + 60)


def sacct(*fields):
    r = subprocess.run(["sacct", "-n", "-P", "-X", "-a", "-S", "now-1hours", "-o", ",".join(fields)],
                       capture_output=True, text=True, env=env(), check=True)
    return [dict(zip(fields, line.split("|"))) for line in r.stdout.splitlines() if line.strip()]


def squeue_running():
    r = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True, env=env(),
                       check=True)
    return r.stdout.split()


def tiny(name, **over):
    return tiny_config(sweep={"name": name, "batch_sizes": [8, 32], "lrs": [0.003, 0.01], "seeds": [0]},
                       analysis={"bootstrap": 50}, **over)


def test_sweep_through_sbatch_with_gpus_equals_local(cluster, tmp_path):
    # 12 train jobs packed 4 per sbatch by the profile (issue 26.1: groups, group-components)
    cfg = tiny("slurm1")
    cfg["sweep"].update(lrs=[0.001, 0.003, 0.01], seeds=[0, 1])
    (tmp_path / "s").mkdir()
    (tmp_path / "l").mkdir()
    path_s = write_config(tmp_path / "s" / "config.yaml", cfg)
    path_l = write_config(tmp_path / "l" / "config.yaml", cfg)
    # the local sweep runs while the SLURM one waits on the scheduler (its numbers do not depend on it)
    local = subprocess.Popen(snakemake_cmd(tmp_path / "l", configfile=path_l), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=env())
    r = snakemake_slurm(tmp_path / "s", path_s)
    _, local_err = local.communicate(timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert local.returncode == 0, local_err[-3000:]
    runs = sorted((tmp_path / "s" / "results/slurm1/runs").glob("*/seed*/metrics.json"))
    assert len(runs) == 12
    job_ids = {read_json(p)["slurm_job_id"] for p in runs}
    assert None not in job_ids and len(job_ids) == 3  # 12 train jobs in 3 submissions, 4 to a packed job
    assert r.stdout.count("has been submitted with SLURM jobid") + r.stderr.count("has been submitted with SLURM jobid") == 3
    jobs = {j["JobID"]: j for j in sacct("JobID", "State", "AllocTRES", "ReqTRES")}
    for jid in job_ids:
        assert jobs[jid]["State"] == "COMPLETED"
        assert "gres/gpu=1" in jobs[jid]["AllocTRES"]  # one GPU per packed job: its members run one after another
    # same numbers as the local run (CPU is deterministic)
    slurm_rows, local_rows = (results_without_timing(tmp_path / f"{d}/results/slurm1/results.csv") for d in "sl")
    assert slurm_rows == local_rows
    fit_s = read_json(tmp_path / "s/results/slurm1/analysis/fit.json")
    fit_l = read_json(tmp_path / "l/results/slurm1/analysis/fit.json")
    assert [r["lr_opt"] for r in fit_s["per_batch"]] == [r["lr_opt"] for r in fit_l["per_batch"]]


def test_failed_member_is_retried_alone(cluster, tmp_path):
    path = write_config(tmp_path / "config.yaml", tiny("slurm2"))
    # results.csv is the target: the retry is a train job's; fit and W&B would run after it, locally.
    # The pack's last member crashes once, whatever order its 4 members run in.
    r = snakemake_slurm(tmp_path, path, "results/slurm2/results.csv", extra_env={"LRSCALE_FAULT_CRASH_ONCE_LAST": "3"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ours = set(re.findall(r"has been submitted with SLURM jobid (\d+)", r.stdout + r.stderr))
    states = {j["JobID"]: j["State"] for j in sacct("JobID", "JobName", "State") if j["JobID"] in ours}
    assert len(ours) == 2 and list(states.values()).count("FAILED") == 1  # the first attempt really failed ...
    runs = tmp_path / "results/slurm2/runs"
    assert len(list(csv.DictReader(open(tmp_path / "results/slurm2/results.csv")))) == 4
    # ... and Snakemake reran the whole packed job (it forces a group's members), but only the member
    # that crashed trained again: the 3 that had finished restored their metrics, with the job id of
    # the attempt that trained them
    ids = {p.parent.parent.name: read_json(p)["slurm_job_id"] for p in runs.glob("*/seed0/metrics.json")}
    failed = next(jid for jid, state in states.items() if state == "FAILED")
    retried = [name for name, jid in ids.items() if jid != failed]
    assert len(retried) == 1 and states[ids[retried[0]]] == "COMPLETED"
    logs = {name: (tmp_path / f"results/slurm2/logs/train/{name}_seed0.log").read_text() for name in ids}
    restored = [name for name, text in logs.items() if "restored, not trained again" in text]
    assert sorted(restored) == sorted(set(ids) - set(retried))
    assert "steps on cpu" in logs[retried[0]] and not any("steps on cpu" in logs[n] for n in restored)


def test_scancel_mid_run_resumes_from_checkpoint(cluster, tmp_path):
    # 2 lrs so the sweep can be fitted; the node has one (fake) GPU, so the jobs run one by one.
    cfg = tiny("slurm3", budget={"unit": "steps", "value": 15000}, train={"eval_points": 20})
    cfg["sweep"].update(batch_sizes=[8], lrs=[0.003, 0.01])
    path = write_config(tmp_path / "config.yaml", cfg)
    fast_ckpt = {"LRSCALE_CHECKPOINT_EVERY_S": "0.5"}
    p = snakemake_slurm(tmp_path, path, background=True, extra_env=fast_ckpt)
    t0 = time.time()
    while not (found := list(tmp_path.glob("results/slurm3/checkpoints/*/seed0/checkpoint.pt"))):
        assert time.time() - t0 < 120 and p.poll() is None, "no checkpoint appeared"
        time.sleep(0.2)
    name = found[0].parent.parent.name  # the run that is training now
    log = tmp_path / f"results/slurm3/logs/train/{name}_seed0.log"
    # squeue asks slurmctld itself; sacct goes through slurmdbd and may lag behind a job start.
    while not (running := squeue_running()):
        assert time.time() - t0 < 120, "a checkpoint is being written but squeue shows no running job"
        time.sleep(0.2)
    assert len(running) == 1
    subprocess.run(["scancel", running[0]], check=True, env=env())
    while "SIGTERM: checkpoint written" not in log.read_text():
        assert time.time() - t0 < 120, log.read_text()[-2000:]
        time.sleep(0.2)
    # The plugin (2.8.0) does not recognise sacct's "CANCELLED by <uid>" state and would wait
    # forever: the documented recovery is to stop snakemake, --unlock, and run again.
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    subprocess.run(snakemake_cmd(tmp_path, "--unlock", configfile=path, cores=None), check=True, capture_output=True,
                   env=env())
    # The rerun asks for the cancelled run alone; an uninterrupted run of it is trained meanwhile.
    lr = float(name.split("_LR")[1])
    ref = tmp_path / "ref.json"
    uninterrupted = subprocess.Popen([str(BIN / "lrscale"), "train", "--config", str(path), "--batch-size", "8",
                                      "--lr", str(lr), "--out", str(ref), "--device", "cpu"], env=tool_env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    r = snakemake_slurm(tmp_path, path, f"results/slurm3/runs/{name}/seed0/metrics.json", extra_env=fast_ckpt)
    _, ref_err = uninterrupted.communicate(timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resumed from step" in log.read_text()
    m = read_json(tmp_path / f"results/slurm3/runs/{name}/seed0/metrics.json")
    assert m["resumed_from_step"] > 0
    # and the resumed run equals an uninterrupted one
    assert uninterrupted.returncode == 0, ref_err[-3000:]
    assert m["lr"] == lr and read_json(ref)["curves"] == m["curves"]
    # the cancelled job was a packed one (both runs, one after another): the rest of it runs now and
    # the resumed run is not trained again
    done = tmp_path / f"results/slurm3/runs/{name}/seed0/metrics.json"
    before = done.stat().st_mtime_ns
    r = snakemake_slurm(tmp_path, path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert len(list(tmp_path.glob("results/slurm3/runs/*/seed0/metrics.json"))) == 2
    assert done.stat().st_mtime_ns == before
