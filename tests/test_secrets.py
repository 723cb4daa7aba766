"""Secrets in the environment never land in outputs or logs (a canary WANDB_API_KEY)."""

import subprocess

import pytest

from conftest import REPO, record_reliability, snakemake_cmd, tiny_config, tool_env, write_config

pytestmark = pytest.mark.slow
CANARY = "canary" + "7f3a9c" * 6


def test_api_key_canary_never_written(tmp_path):
    cfg = tiny_config(sweep={"name": "canary", "batch_sizes": [8, 16, 32], "lrs": [0.003, 0.01, 0.03]},
                      budget={"value": 256}, train={"eval_points": 4})
    path = write_config(tmp_path / "config.yaml", cfg)
    env = tool_env(WANDB_API_KEY=CANARY, LRSCALE_SECRET=CANARY)
    r = subprocess.run(snakemake_cmd(tmp_path, configfile=path), capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert CANARY not in r.stdout + r.stderr
    scanned = 0
    for f in (tmp_path / "results").rglob("*"):
        if f.is_file():
            scanned += 1
            assert CANARY.encode() not in f.read_bytes(), f
    assert scanned > 20  # metrics, results.csv, fit.json, plots, logs, the W&B run files
    record_reliability("security", "canary WANDB_API_KEY never in any output, log or W&B file", scanned, scanned, 0,
                       "files scanned after a full sweep")


def test_no_unsafe_yaml_or_shell_in_package():
    import re

    offenders = []
    for f in (REPO / "src" / "lrscale").glob("*.py"):
        text = f.read_text()
        for bad in (r"shell=True", r"yaml\.load\(", r"os\.system\(", r"(?<![.\w])eval\(", r"(?<![.\w])exec\("):
            if re.search(bad, text):
                offenders.append(f"{f.name}: {bad}")
    assert not offenders, offenders
    record_reliability("security", "no shell=True / yaml.load / eval / exec / os.system in the package", 1, 1)
