"""W&B replay details: offline by default, online falls back, no step=, reader framing."""

import csv
import time

import pytest

from conftest import lrscale, read_json, record_reliability, tiny_config, write_config
from lrscale import config, wandb_file
from lrscale.wandb_log import build_log_calls


def fake_run(b, lr, seed, n=3, diverged=False):
    steps = list(range(10, 10 * n + 1, 10))
    return {
        "batch_size": b, "lr": lr, "seed": seed, "name": config.run_name(b, lr),
        "curves": {"step": steps, "samples_seen": [s * b for s in steps], "train_loss": [1.0 + seed] * n,
                   "val_loss": [2.0 + seed] * n, "learning_rate": [lr] * n},
        "final_val_loss": None if diverged else 2.0 + seed, "final_train_loss": None if diverged else 1.0,
        "converged": False, "diverged": diverged,
    }


def test_log_calls_grid_order_and_counts():
    cfg = config.validate(tiny_config(sweep={"batch_sizes": [8, 32], "lrs": [0.01, 0.001], "seeds": [0]}))
    runs = [fake_run(b, lr, 0) for b in (32, 8) for lr in (0.001, 0.01)]  # any input order
    ns, calls = build_log_calls(cfg, runs)
    assert ns == ["B8_LR0.010000", "B8_LR0.001000", "B32_LR0.010000", "B32_LR0.001000"]  # config order
    assert len(calls) == 4 * (1 + 3 + 1)
    assert [c["config/experiment_num"] for c in calls if "config/experiment_num" in c] == [1, 2, 3, 4]
    assert all("step" not in k or k == "step" or k.endswith("/step") for c in calls for k in c)


def test_diverged_run_logs_nan_summary():
    cfg = config.validate(tiny_config(sweep={"batch_sizes": [8], "lrs": [0.1], "seeds": [0]}))
    _, calls = build_log_calls(cfg, [fake_run(8, 0.1, 0, n=1, diverged=True)])
    summ = calls[-1]
    assert summ["summary/B8_LR0.100000_final_val_loss"] != summ["summary/B8_LR0.100000_final_val_loss"]  # NaN
    assert summ["summary/B8_LR0.100000_converged"] is False


@pytest.fixture(scope="module")
def offline_run(tiny_runs, tmp_path_factory):
    """The session's tiny runs replayed by the console script (the wandb command's one process
    smoke): the offline run file, read back by the tests."""
    out = tmp_path_factory.mktemp("wandb") / "run.json"
    lrscale("wandb", "--config", tiny_runs.config, "--results", tiny_runs.results, "--out", out, *tiny_runs.metrics,
            check=True)
    return read_json(out)["run_file"]


@pytest.mark.slow  # waits out W&B's online init (init_timeout_s 10) against a closed port
def test_online_without_network_falls_back_to_offline(tmp_path, tiny_runs):
    online = {**tiny_runs.cfg, "wandb": {**tiny_runs.cfg["wandb"], "mode": "online", "init_timeout_s": 10}}
    path, metrics = write_config(tmp_path / "c.yaml", online), tiny_runs.metrics
    t0 = time.time()
    r = lrscale("wandb", "--config", path, "--results", tiny_runs.results, "--out", tmp_path / "run.json",
                *metrics, env={"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"})
    took = time.time() - t0
    assert r.returncode == 0, r.stderr
    assert took < 30
    facts = read_json(tmp_path / "run.json")
    assert facts["mode"] == "offline"
    assert "falling back to offline" in r.stderr and "wandb sync" in r.stderr
    assert len(wandb_file.history(facts["run_file"])) == 2 * (1 + 2 + 1) + 1
    assert "x" * 40 not in r.stderr + r.stdout + (tmp_path / "run.json").read_text()
    record_reliability("fault", "W&B online with no network and a bad key (offline fallback, <= 30 s)", 1, 1, 0,
                       f"fell back and finished in {took:.1f} s (init_timeout_s 10)")


def test_reader_rejects_non_wandb_file(tmp_path):
    (tmp_path / "x.wandb").write_bytes(b"not a wandb file")
    with pytest.raises(ValueError, match="bad header"):
        list(wandb_file.iter_payloads(tmp_path / "x.wandb"))


def test_noise_probes_reach_results_csv_and_the_wandb_run(tiny_runs, offline_run):
    """Issue 13: the probes' B_simple and kurtosis sit on the W&B rows of their eval steps, the last
    one in the summary and in results.csv (read back from the offline run file and the CSV)."""
    hist = wandb_file.history(offline_run)
    table = list(csv.DictReader(open(tiny_runs.results)))
    for out, row in zip(tiny_runs.metrics, table):
        m = read_json(out)
        ns, probes = m["name"], m["noise"]["probes"]
        assert [p["step"] for p in probes] == m["curves"]["step"] == [8, 16]  # eval_points 2: both are probes
        logged = [r for r in hist if f"{ns}/noise_kurtosis" in r]
        assert [r[f"{ns}/step"] for r in logged] == [8, 16]
        assert [r[f"{ns}/noise_kurtosis"] for r in logged] == pytest.approx([p["kurtosis"] for p in probes])
        assert all(f"{ns}/b_simple" in r for r in logged)
        (summary,) = [r for r in hist if f"summary/{ns}_final_val_loss" in r]
        assert summary[f"summary/{ns}_noise_kurtosis"] == pytest.approx(probes[-1]["kurtosis"])
        assert row["name"] == ns and float(row["noise_kurtosis"]) == pytest.approx(probes[-1]["kurtosis"])
        assert "b_simple" in row and "noise_tail_index" in row


def test_the_seed_studys_four_views_open_ready(tiny_runs, offline_run):
    """Issue 14.4: the charts its Phase-2 spec had users build by hand are in the run (read back from
    the offline run file: chart specs and their data tables), every earlier key untouched."""
    run_file = offline_run
    runs = [read_json(m) for m in tiny_runs.metrics]  # B=8, lrs 0.003 and 0.01, one seed
    charts = wandb_file.charts(run_file)
    assert {k: c["panelDefId"] for k, c in charts.items()} == {
        "views/B8_val_loss_by_lr": "wandb/lineseries/v0", "views/final_val_loss_vs_batch_by_lr": "wandb/lineseries/v0",
        "views/val_loss_all_by_samples": "wandb/lineseries/v0"}
    per_lr = wandb_file.table(run_file, "views/B8_val_loss_by_lr_table")
    for m in runs:
        key = f"lr={m['lr']:.3g}"
        rows = [r for r in per_lr["data"] if key in r]
        assert [r[per_lr["columns"].index("lineVal")] for r in rows] == pytest.approx(m["curves"]["val_loss"])
    heat = wandb_file.table(run_file, "views/final_val_loss_heatmap")
    assert heat["columns"] == ["batch_size", "lr=0.003", "lr=0.01"]
    assert heat["data"] == [[8, pytest.approx(runs[0]["final_val_loss"]), pytest.approx(runs[1]["final_val_loss"])]]
    hist = wandb_file.history(run_file)
    assert any("results.path" in r for r in hist) and any("summary/final_val_loss" in r for r in hist)
    # the results table: results.csv's columns, numbers as numbers (sortable and plottable in the UI)
    results, csv_rows = wandb_file.table(run_file, "results"), list(csv.DictReader(open(tiny_runs.results)))
    assert results["columns"] == list(csv_rows[0])
    col = results["columns"].index
    for row, r in zip(results["data"], csv_rows, strict=True):
        assert isinstance(row[col("lr")], float) and row[col("lr")] == float(r["lr"])
        assert isinstance(row[col("final_val_loss")], float) and row[col("final_val_loss")] == float(r["final_val_loss"])
        assert row[col("batch_size")] == 8 and isinstance(row[col("num_steps")], int)
        assert row[col("diverged")] is False and row[col("diverged_at_step")] is None and row[col("name")] == r["name"]


def test_results_table_keeps_types_and_gaps(tmp_path):
    """A diverged run's step stays an integer beside other runs' empty cells; empty floats are None."""
    import wandb

    from lrscale.aggregate import COLUMNS
    from lrscale.wandb_log import results_table

    values = [dict.fromkeys(COLUMNS, ""), dict.fromkeys(COLUMNS, "")]
    values[0].update(batch_size="8", lr="0.1", diverged="True", diverged_at_step="12", name="B8_LR0.100000", seed="0")
    values[1].update(batch_size="8", lr="0.01", diverged="False", final_val_loss="0.25", name="B8_LR0.010000", seed="0")
    path = tmp_path / "results.csv"
    path.write_text(",".join(COLUMNS) + "\n" + "".join(",".join(v[c] for c in COLUMNS) + "\n" for v in values))
    table = results_table(wandb, path)
    rows = [dict(zip(table.columns, row)) for row in table.data]
    assert rows[0]["diverged_at_step"] == 12 and type(rows[0]["diverged_at_step"]) is int
    assert rows[1]["diverged_at_step"] is None and rows[0]["final_val_loss"] is None
    assert rows[1]["final_val_loss"] == 0.25 and rows[0]["diverged"] is True and rows[1]["diverged"] is False


def test_views_average_seeds_and_leave_diverged_points_out():
    from lrscale.wandb_log import build_views

    runs = [fake_run(8, 0.01, 0), fake_run(8, 0.01, 1), fake_run(8, 0.1, 0, diverged=True),
            fake_run(16, 0.01, 0)]
    runs[2]["curves"]["val_loss"] = [2.0, float("nan"), None]  # it blew up after its first eval point
    v = build_views(runs)
    kind, xs, ys, keys, _, xname = v["views/B8_val_loss_by_lr"]
    assert (kind, keys, xname) == ("lines", ["lr=0.01", "lr=0.1"], "step")
    assert ys[0] == [2.5, 2.5, 2.5] and (xs[1], ys[1]) == ([10], [2.0])  # seed mean; finite points only
    kind, xs, ys, keys, _, _ = v["views/final_val_loss_vs_batch_by_lr"]
    assert (xs, ys) == ([[8, 16], []], [[2.5, 2.0], []])  # lr 0.1 diverged at its only batch size
    assert v["views/final_val_loss_heatmap"] == ("table", ["batch_size", "lr=0.01", "lr=0.1"],
                                                 [[8, 2.5, None], [16, 2.0, None]])
    assert v["views/val_loss_all_by_samples"][3] == ["B8_LR0.010000", "B8_LR0.100000", "B16_LR0.010000"]
