"""bench/sweep_gpu.py on a CPU: every variant through real snakemake, the wall split adds up,
the seed-style per-step sync changes timing only, and the extrapolation check runs."""

import json
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow  # bench/sweep_gpu.py: three variants, each a real snakemake sweep


def test_sweep_bench_tiny_cpu(tmp_path):
    out = tmp_path / "sweep_gpu.json"
    r = subprocess.run([sys.executable, str(REPO / "bench/sweep_gpu.py"), "--tiny", "--steps", "30", "--full-steps",
                        "90", "--check-batch", "8", "--slots", "2", "--work", str(tmp_path / "work"), "--out", str(out)],
                       capture_output=True, text=True, timeout=900, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert list(res["runs"]) == ["seed", "default", "fastest"]
    for run in res["runs"].values():
        assert [j["batch_size"] for j in run["jobs"]] == [8, 32, 128]
        for j in run["jobs"]:
            parts = [j[k] for k in ("startup_s", "setup_s", "compile_s", "train_s", "eval_s", "probe_s", "write_s")]
            assert min(parts) >= 0 and j["startup_s"] > 0 and j["train_s"] > 0
            assert (j["probe_s"] == 0) == (run["variant"] == "seed")  # the seed study's loop had no probes
            # the parts timed inside the process fit in the job's wall that Snakemake measured outside it
            # (/proc's start time is in 10 ms ticks); write_s is the rest, so the parts add up to it
            assert sum(parts) - j["write_s"] <= j["job_s"] + 0.05
            assert abs(sum(parts) - j["job_s"]) < 0.05
            assert j["steps_per_s"] > 0
        e = run["extrapolated"]
        assert e["sweep_full_s"] > run["wall_s"] and 0 < e["overhead_share"] < 1
    assert res["runs"]["seed"]["slots"] == 1 and res["runs"]["fastest"]["slots"] == 2
    # a host sync per step and the timers change no number: fp32 on a CPU in every variant
    assert {a["rel_diff"] for a in res["loss_agreement"]} == {0.0}
    (check,) = res["checks"]
    assert check["steps"] == 90 and check["measured_job_s"] > 0 and check["predicted_job_s"] > 0
    assert "| fastest | 2 |" in out.with_suffix(".txt").read_text()
