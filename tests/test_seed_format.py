"""Issue 14.3: the seed study's own tooling reads our results.csv, and what it gets for a diverged run."""

import csv
import time

import pytest

from conftest import cli, read_json, tiny_config, write_config
from lrscale.analysis import fit

SEED_COLUMNS = ["batch_size", "lr", "final_train_loss", "final_val_loss", "train_loss_std", "converged", "num_steps",
                "timestamp"]
LRS = [0.001, 0.003, 0.01, 0.03, 100.0]  # the last one diverges


def seed_study_rows(path):
    """Parse a results CSV as the seed study's analysis script does: its columns, timestamp a float
    (a diverged run's empty loss cells read as NaN, as the README says)."""
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.append({"batch_size": int(row["batch_size"]), "lr": float(row["lr"]),
                        "final_train_loss": float(row["final_train_loss"] or "nan"),
                        "final_val_loss": float(row["final_val_loss"] or "nan"),
                        "train_loss_std": float(row["train_loss_std"] or "nan"),
                        "converged": row["converged"] == "True", "num_steps": int(row["num_steps"]),
                        "timestamp": float(row["timestamp"])})
    return out


def test_seed_study_reads_our_results_csv(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", tiny_config(sweep={"batch_sizes": [8], "lrs": LRS}, budget={"value": 256}))
    metrics, t0 = [], time.time()
    for lr in LRS:
        out = tmp_path / f"runs/B8_LR{lr:.6f}/seed0/metrics.json"
        cli("train", "--config", cfg, "--batch-size", 8, "--lr", lr, "--out", out, "--device", "cpu", check=True)
        metrics.append(out)
    cli("aggregate", *metrics, "--out", tmp_path / "results.csv", check=True)
    header = next(csv.reader(open(tmp_path / "results.csv")))
    assert header[:7] == SEED_COLUMNS[:7] and "timestamp" in header  # seed columns first, ours appended
    assert header[-4:] == ["epochs", "overfit", "budget", "budget_unit"]  # appended after timestamp, in order
    cells = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert {r["epochs"] for r in cells} == {""}  # teacher_student draws fresh data: no epochs
    assert {(r["budget"], r["budget_unit"]) for r in cells} == {("256", "samples")}  # the config's budget
    assert {r["overfit"] for r in cells[:-1]} <= {"True", "False"} and cells[-1]["overfit"] == ""  # the last diverged

    rows = seed_study_rows(tmp_path / "results.csv")
    assert [r["lr"] for r in rows] == LRS
    for r, path in zip(rows, metrics):
        assert t0 <= r["timestamp"] <= time.time()
        assert r["timestamp"] == read_json(path)["finished_at"]
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)  # the jobs ran one after another
    diverged = rows[-1]
    assert diverged["final_val_loss"] != diverged["final_val_loss"] and diverged["converged"] is False
    assert all(r["final_val_loss"] == r["final_val_loss"] for r in rows[:-1])

    # the round trip: the seed study's columns alone are read as its format, and locate the same optimum
    with open(tmp_path / "seed.csv", "w", newline="") as f:
        w = csv.DictWriter(f, SEED_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(csv.DictReader(open(tmp_path / "results.csv")))
    ours, theirs = fit.read_table(tmp_path / "results.csv"), fit.read_table(tmp_path / "seed.csv")
    assert (ours.fmt, theirs.fmt) == ("lrscale", "seed_study")
    lr_ours = fit.analyse(ours, bootstrap=0)["per_batch"][0]["lr_opt"]
    assert fit.analyse(theirs, bootstrap=0)["per_batch"][0]["lr_opt"] == pytest.approx(lr_ours)
