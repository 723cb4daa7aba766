"""Secrets in the environment never land in outputs or logs (a canary WANDB_API_KEY)."""

import pytest

from conftest import CANARY, REPO, record_reliability


@pytest.mark.slow  # scans every file a real snakemake sweep wrote (the session's shared sweep)
def test_api_key_canary_never_written(shared_sweep):
    r = shared_sweep.run  # run with the canary as WANDB_API_KEY and LRSCALE_SECRET
    assert CANARY not in r.stdout + r.stderr
    scanned = 0
    for f in (shared_sweep.wd / "results").rglob("*"):
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
