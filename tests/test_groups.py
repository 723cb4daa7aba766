"""Issue 25.1: grouped fits (`lrscale fit --by`) on a CSV with a known truth per group."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import cli

from lrscale.analysis import groups

BS = (8, 16, 32, 64, 128, 256, 512)
LOG_LRS = -4.5 + 0.5 * np.arange(7)


def write_runs(path, truths: dict, seeds=2, sigma=0.003, rng_seed=0, bs_of=None):
    """A results CSV in lrscale's format plus group columns: per group (params, beta2), loss =
    1 + 0.2 d² + N(0, σ), d = log10 lr − log10 lr_opt, lr_opt = 1e-3·(B/64)^β·(params/4e7)^α."""
    rng = np.random.default_rng(rng_seed)
    rows = [["batch_size", "lr", "final_val_loss", "seed", "diverged", "params", "beta2", "note"]]
    for (params, beta2), (beta, alpha) in truths.items():
        for b in (bs_of or {}).get(params, BS):
            opt = -3 + beta * math.log10(b / 64) + alpha * math.log10(params / 4e7)
            for s in range(seeds):
                for x in LOG_LRS:
                    loss = 1 + 0.2 * (x - opt) ** 2 + rng.normal(0, sigma)
                    rows.append([b, f"{10 ** x:.6g}", f"{loss:.6f}", s, "False", f"{params:g}", beta2, "kept, never read"])
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_grouped_fit_per_group_outputs_summary_and_a_group_too_small(tmp_path):
    truths = {(1e7, 0.95): (0.5, -0.3), (4e7, 0.95): (0.5, -0.3), (1.6e8, 0.95): (0.5, -0.3), (6.4e8, 0.95): (0.5, -0.3)}
    path = write_runs(tmp_path / "runs.csv", truths, bs_of={6.4e8: (8, 64)})
    r = cli("fit", path, "--by", "params", "--bootstrap", "0", "--out", tmp_path / "out", check=True)
    s = json.loads((tmp_path / "out/groups.json").read_text())
    assert [p["label"] for p in s["per_group"]] == ["params=1e+07", "params=4e+07", "params=1.6e+08", "params=6.4e+08"]
    for p in s["per_group"][:3]:  # every output of a plain fit, per group
        assert all((tmp_path / "out" / f"params={p['group']['params']}" / name).is_file()
                   for name in ("results.csv", "fit.json", "report.md", "best_per_batch.csv", "lr_opt_vs_batch.png"))
    assert all(p["ci95"][0] <= 0.5 <= p["ci95"][1] for p in (s["per_group"][0], s["per_group"][2]))
    bent = s["per_group"][1]  # its verdict reads a bend (slopes 0.51 and 0.49 beyond its bend test): not decided
    assert bent["beta"] is None and bent["ci95"] is None and bent["reason"].startswith("not decided: lr_opt bends")
    assert json.loads((tmp_path / "out/params=4e+07/fit.json").read_text())["answer"]["beta"] is not None  # not listed
    small = s["per_group"][3]
    assert small["beta"] is None and small["n_used"] == 2 and small["reason"].startswith("no beta: only 2 batch size(s)")
    assert s["agreement"]["differ"] is False and s["numeric"] == ["params"]
    joint = s["joint"]
    assert joint["beta_ci95"][0] <= 0.5 <= joint["beta_ci95"][1]
    alpha = joint["slopes"]["params"]
    assert alpha["ci95"][0] <= -0.3 <= alpha["ci95"][1] and abs(alpha["value"] + 0.3) < 0.05
    assert alpha["dof"] == 4 - 1 - 1  # the small group's two optima still give it a level
    assert s["sentence"].startswith("2 of 4 groups have no β (listed with why). The groups' βs agree within their CIs")
    assert "α_params = " in s["sentence"] and "lr_opt ∝ params^α_params across groups" in s["sentence"]
    assert "(from their per-B optima, also those of params=4e+07, params=6.4e+08, which have no β of their own)" in s[
        "sentence"]  # the fit across groups reads them: said, not hidden
    lines = r.stdout.splitlines()  # one line per group and the summary, not each group's tables and verdict
    assert len(lines) == 5 and all(line.startswith("[lrscale fit --by] ") for line in lines) and "Verdict" not in r.stdout
    assert lines[0].startswith("[lrscale fit --by] params=1e+07: β = 0.5") and r.stderr == "", r.stderr
    md = (tmp_path / "out/groups.md").read_text()
    assert "| params=6.4e+08 | 28 | — | — | — | 2 | no beta: only 2 batch size(s)" in md
    assert (tmp_path / "out/lr_opt_by_group.png").stat().st_size > 10_000


def test_groups_whose_betas_differ_get_no_single_beta(tmp_path):
    truths = {(1e7, 0.95): (0.3, 0.0), (1e7, 0.99): (0.9, 0.0)}
    path = write_runs(tmp_path / "runs.csv", truths)
    cli("fit", path, "--by", "params,beta2", "--bootstrap", "0", "--out", tmp_path / "out", check=True)
    s = json.loads((tmp_path / "out/groups.json").read_text())
    assert [p["label"] for p in s["per_group"]] == ["params=1e+07, beta2=0.95", "params=1e+07, beta2=0.99"]
    assert s["agreement"]["differ"] is True and s["agreement"]["p_value"] < 1e-6
    assert s["sentence"].startswith("The groups' βs differ beyond their CIs") and "no one β for all" in s["sentence"]
    assert (tmp_path / "out/params=1e+07_beta2=0.99/fit.json").is_file()  # one folder per group


@pytest.mark.parametrize("argv, message", [
    (["--by", "model_size"], "--by column(s) ['model_size'] not in the CSV; expected some of ['batch_size'"),
    (["--by", "params,,beta2"], "argument --by: 'params,,beta2'; expected distinct comma-separated column names"),
    (["--by", "params", "--horizon", "8"], "--horizon, --metrics and --plans fit one sweep"),
])
def test_bad_by_is_a_one_line_error(tmp_path, argv, message):
    path = write_runs(tmp_path / "runs.csv", {(1e7, 0.95): (0.5, 0.0)}, seeds=1)
    r = cli("fit", path, *argv, "--out", tmp_path / "out")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_two_stage_keeps_a_groups_shared_error_out_of_the_slope_ci():
    # each group's optima share one error (its own shift): treating the optima as independent gives a
    # slope CI far too narrow; the between-group stage sees the groups' scatter
    rng = np.random.default_rng(3)
    held, held_naive = 0, 0
    for _ in range(200):
        n_values = [1e7, 4e7, 1.6e8, 6.4e8]
        optima = {}
        for n in n_values:
            shift = rng.normal(0, 0.05)  # the group's own error, shared by its optima
            optima[n] = [(b, math.log(1e-3) + 0.5 * math.log(b / 64) - 0.3 * math.log(n / 4e7) + shift
                          + rng.normal(0, 0.02), 0.02) for b in BS]
        fit = groups.two_stage(optima, {"N": {n: n for n in n_values}})
        lo, hi = fit["slopes"]["N"]["ci95"]
        held += lo <= -0.3 <= hi
        rows = [(b, n, y, se) for n, r in optima.items() for b, y, se in r]
        from lrscale.analysis.horizons import wls
        naive = wls([np.log([r[0] for r in rows]), np.log([r[1] for r in rows])], [r[2] for r in rows], [r[3] for r in rows])
        held_naive += naive["ci95"][2][0] <= -0.3 <= naive["ci95"][2][1]
    assert held >= 0.90 * 200 and held_naive < 0.75 * 200


# ------------------------------------------------------------------ lrscale import (issue 25.2)
def porian_frame(rng_seed=0):
    """A small table in the format of Porian et al.'s experiment_results.pickle.xz: one row per run,
    val/loss and train/loss as pandas Series over steps, hparams 'sweep' for the lr x bs sweep."""
    import pandas as pd

    rng = np.random.default_rng(rng_seed)
    rows = []
    for width, depth in ((96, 3), (128, 4), (192, 6)):
        n = groups_params(width, depth)
        for bs in (32, 64, 128, 256):
            opt = -2.5 + 0.5 * math.log10(bs / 64) - 0.3 * math.log10(n / 2e7)
            for x in -4 + 0.5 * np.arange(6):
                for seed in (0, 1):
                    final = 3.5 + 0.2 * (x - opt) ** 2 + rng.normal(0, 0.003)
                    steps = [100, 200, 300]
                    rows.append({"hparams": "sweep", "width": width, "depth": depth, "bs": bs, "lr": 10 ** x,
                                 "beta2": 0.95, "seed": seed, "warmup": "short", "decay": "const",
                                 "val/loss": pd.Series([final + 1.0, final + 0.3, final], index=steps),
                                 "train/loss": pd.Series([final + 1.1, final + 0.2, final - 0.01], index=steps)})
    # diverged: its last logged value is not finite, whatever it logged before
    rows.append({**rows[0], "lr": 1.0, "val/loss": pd.Series([5.0, float("nan")], index=[100, 200])})
    rows.append({**rows[1], "hparams": "base"})  # not the sweep: left out
    return pd.DataFrame(rows)


def groups_params(width, depth):
    from lrscale.importers import params_of

    return float(params_of(width, depth))


def test_params_follow_their_model_and_the_importer_takes_the_final_val_loss(tmp_path):
    from lrscale.importers import params_of

    # width 96: SwiGLU hidden 8·96/3 = 256 (already a multiple of 256); 3 layers of 4·96² + 3·96·256, embedding 50432·96
    assert params_of(96, 3) == 3 * (4 * 96**2 + 3 * 96 * 256) + 50432 * 96
    assert params_of(100, 1) == 4 * 100**2 + 3 * 100 * 512 + 50432 * 100  # 266 rounds up to 512
    frame = porian_frame()
    frame.to_pickle(tmp_path / "experiment_results.pickle.xz")
    out = tmp_path / "porian.csv"
    r = cli("import", "porian", tmp_path / "experiment_results.pickle.xz", "--out", out, check=True)
    assert f"145 runs (1 diverged or without a final loss) -> {out}; group columns: params, beta2, width, depth" in r.stdout
    import pandas as pd

    table = pd.read_csv(out)
    assert list(table.columns[:5]) == ["batch_size", "lr", "final_val_loss", "seed", "diverged"]
    assert set(table.columns[5:]) == {"params", "beta2", "width", "depth", "warmup", "decay"}
    first = frame.iloc[0]
    row = table[(table.batch_size == first.bs) & np.isclose(table.lr, first.lr) & (table.seed == first.seed)
                & (table.width == first.width)]
    assert row.final_val_loss.item() == pytest.approx(first["val/loss"].iloc[-1])  # the last val/loss, not train/loss
    assert table.diverged.sum() == 1 and table[table.diverged].final_val_loss.isna().all()
    cli("fit", out, "--by", "params", "--bootstrap", "0", "--out", tmp_path / "fits", check=True)
    s = json.loads((tmp_path / "fits/groups.json").read_text())
    assert len(s["per_group"]) == 3 and all(p["beta"] is not None for p in s["per_group"])
    alpha = s["joint"]["slopes"]["params"]
    assert alpha["ci95"][0] <= -0.3 <= alpha["ci95"][1]


def test_grouped_fit_edges_collisions_horizons_and_nothing_fittable(tmp_path):
    path = write_runs(tmp_path / "runs.csv", {(1e7, 0.95): (0.5, 0.0)}, seeds=1)
    text = path.read_text().splitlines()
    # two groups whose values differ only in characters a folder name makes safe
    rows = [text[0]] + [r.replace(",0.95,", ",a/b,") for r in text[1:]] + [r.replace(",0.95,", ",a_b,") for r in text[1:]]
    (tmp_path / "collide.csv").write_text("\n".join(rows) + "\n")
    cli("fit", tmp_path / "collide.csv", "--by", "beta2", "--bootstrap", "0", "--out", tmp_path / "c", check=True)
    s = json.loads((tmp_path / "c/groups.json").read_text())
    assert sorted(p["dir"] for p in s["per_group"]) == [str(tmp_path / "c/beta2=a_b"), str(tmp_path / "c/beta2=a_b_")]
    # several horizons in a 'budget' column and --by without it: one line, exit 2, nothing written
    budget = [text[0] + ",budget"] + [r + f",{1000 * (1 + i % 2)}" for i, r in enumerate(text[1:])]
    (tmp_path / "budget.csv").write_text("\n".join(budget) + "\n")
    r = cli("fit", tmp_path / "budget.csv", "--by", "params", "--out", tmp_path / "b")
    assert r.returncode == 2 and "column 'budget' holds 2 horizons; expected 'budget' among the --by columns" in r.stderr
    assert not (tmp_path / "b").exists()
    # no group can be fitted (each has a single lr): exit 2, each group's reason in groups.md
    single = [text[0]] + [r for r in text[1:] if r.split(",")[1] == text[1].split(",")[1]]
    (tmp_path / "single.csv").write_text("\n".join(single) + "\n")
    r = cli("fit", tmp_path / "single.csv", "--by", "params", "--out", tmp_path / "s")
    assert r.returncode == 2 and "no group could be fitted (1 groups by params" in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr  # no library warning (an empty legend) beside the error
    assert "every batch size has a single lr" in (tmp_path / "s/groups.md").read_text()


def test_proportional_or_constant_group_columns_do_not_crash_the_joint_fit():
    rng = np.random.default_rng(0)
    optima = {g: [(b, math.log(1e-3) + 0.5 * math.log(b / 64) + rng.normal(0, 0.02), 0.02) for b in BS] for g in range(4)}
    n = {g: 1e7 * 4**g for g in range(4)}
    fit = groups.two_stage(optima, {"N": n, "D": {g: 20 * n[g] for g in n}, "beta2": {g: 0.95 for g in n}})
    assert fit["beta"] is not None and fit["slopes"] == {}  # tokens = 20·N: their effects cannot be told apart
    assert "N, D move together (proportional in log)" in fit["slopes_reason"]
    alone = groups.two_stage(optima, {"N": n, "beta2": {g: 0.95 for g in n}})
    assert list(alone["slopes"]) == ["N"] and alone["slopes"]["N"]["dof"] == 2  # a constant column is dropped


@pytest.mark.parametrize("argv, message", [
    (["porian", "missing.pickle.xz"], "missing.pickle.xz: no such file; expected a pickle or CSV of runs"),
    (["porian", "not_a_frame.pkl"], "not_a_frame.pkl: holds a list; expected a pandas DataFrame"),
    (["porian", "garbage.pkl"], "garbage.pkl: not a readable pickle (UnpicklingError)"),
    (["table", "runs.csv", "--columns", "batch_size=bs,lr=lr"], "--columns lacks ['final_val_loss']"),
    (["table", "runs.csv", "--columns", "batch=bs"], "argument --columns: 'batch=bs'; expected OURS=THEIRS pairs"),
    (["table", "runs.csv", "--columns", "batch_size=bs,lr=eta,final_val_loss=loss"], "missing column(s) ['eta']"),
    (["table", "runs.csv", "--columns", "batch_size=bs,lr=lr,final_val_loss=loss", "--keep", "N"],
     "--keep column(s) ['N'] not in the table"),
    (["table", "twice.csv", "--columns", "batch_size=bs,lr=lr,final_val_loss=loss"],
     "2 runs share batch size, lr, seed and the kept columns (e.g. batch size 8, lr 0.001, seed 0)"),
])
def test_bad_import_input_is_a_one_line_error(tmp_path, argv, message):
    import pickle

    (tmp_path / "not_a_frame.pkl").write_bytes(pickle.dumps([1, 2]))
    (tmp_path / "garbage.pkl").write_bytes(b"not a pickle at all")
    (tmp_path / "runs.csv").write_text("bs,lr,loss\n8,0.001,1.5\n")
    (tmp_path / "twice.csv").write_text("bs,lr,loss\n8,0.001,1.5\n8,0.001,1.6\n")
    (tmp_path / "out.csv").write_text("a finished result\n")
    r = cli("import", *argv, "--out", tmp_path / "out.csv", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert (tmp_path / "out.csv").read_text() == "a finished result\n"  # never destroyed by bad input


def test_import_table_maps_columns_and_keeps_the_group_ones(tmp_path):
    (tmp_path / "runs.csv").write_text("B,eta,loss,N\n8,0.001,1.5,1e6\n8,0.01,nan,1e6\n")
    r = cli("import", "table", tmp_path / "runs.csv", "--columns", "batch_size=B,lr=eta,final_val_loss=loss",
            "--keep", "N", "--out", tmp_path / "out.csv", check=True)
    assert "2 runs (1 diverged" in r.stdout
    assert (tmp_path / "out.csv").read_text() == ("batch_size,lr,final_val_loss,seed,diverged,N\n"
                                                  "8,0.001,1.5,0,False,1000000\n8,0.01,,0,True,1000000\n")


def test_analysis_by_unset_leaves_a_finished_sweeps_rule_params_as_they_were():
    # analysis.by (null by default) came after sweeps were made: the fit rule's params (fit_config) and the
    # plan/config pages' JSON must not gain it, or Snakemake's params trigger reruns every finished fit
    from lrscale import config

    cfg = config.load(Path(__file__).parents[1] / "config" / "config.yaml")
    assert cfg["analysis"]["by"] is None
    assert "by" not in config.fit_config(cfg)["analysis"]
    assert config.fit_config(cfg)["analysis"] == {k: v for k, v in cfg["analysis"].items() if k != "by"}
    kept = config.without_null({**cfg, "analysis": {**cfg["analysis"], "by": ["params"]}}, [("analysis", "by")])
    assert kept["analysis"]["by"] == ["params"]  # only a null is dropped
