"""Issue 25.1: grouped fits (`lrscale fit --by`) on a CSV with a known truth per group."""

import csv
import json
import math

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
        assert p["ci95"][0] <= 0.5 <= p["ci95"][1]
    small = s["per_group"][3]
    assert small["beta"] is None and small["n_used"] == 2 and small["reason"].startswith("no beta: only 2 batch size(s)")
    assert s["agreement"]["differ"] is False and s["numeric"] == ["params"]
    joint = s["joint"]
    assert joint["beta_ci95"][0] <= 0.5 <= joint["beta_ci95"][1]
    alpha = joint["slopes"]["params"]
    assert alpha["ci95"][0] <= -0.3 <= alpha["ci95"][1] and abs(alpha["value"] + 0.3) < 0.05
    assert alpha["dof"] == 4 - 1 - 1  # the small group's two optima still give it a level
    assert s["sentence"].startswith("1 of 4 groups have no β (listed with why). The groups' βs agree within their CIs")
    assert "lr_opt ∝ params^α, α = " in s["sentence"] and "[fitted" not in r.stdout
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
