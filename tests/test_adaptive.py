"""Issue 11: the adaptive planner on sweeps with a known optimum (pure functions, no training)."""

import json
import math
import sys

import numpy as np
import pytest

from conftest import REPO, tiny_config
from lrscale import adaptive, config, optima
from lrscale.errors import UserError
from lrscale.sweep_table import from_records
from lrscale.wandb_log import build_log_calls


def cfg_with(lrs, seeds=(0,), batch_sizes=(8, 64), **adapt):
    cfg = tiny_config(sweep={"name": "ad", "batch_sizes": list(batch_sizes), "lrs": list(lrs), "seeds": list(seeds),
                             "adaptive": {"rounds": 3, **adapt}})
    return config.validate(cfg)


def sweep_for(optima: dict, points, noise=0.002, seed=0, flat=()):
    """Runs at `points` [(B, lr, seed)] of a parabola in log10 lr with its minimum at optima[B]
    (no curvature at the batch sizes in `flat`)."""
    rng = np.random.default_rng(seed)
    recs = []
    for b, lr, s in points:
        c = 0.0 if b in flat else 0.2
        loss = 0.1 + c * (math.log10(lr) - math.log10(optima[b])) ** 2 + rng.normal(0, noise)
        recs.append((b, lr, s, loss, math.nan, math.nan, math.nan))
    return from_records(recs, "lrscale", 0.1)


def grid(cfg):
    return [(p["batch_size"], p["lr"], p["seed"]) for p in config.grid(cfg)]


def test_unbracketed_optimum_gets_lrs_beyond_the_edge_with_the_grid_seeds():
    cfg = cfg_with([1e-4, 3e-4, 1e-3, 3e-3, 1e-2], seeds=(0, 1))
    sweep = sweep_for({8: 1e-3, 64: 0.05}, grid(cfg))  # B=64's optimum is above the top lr
    plan = adaptive.plan_round(cfg, 2, sweep, [])
    ext = [p for p in plan["points"] if p["batch_size"] == 64]
    assert {p["lr"] for p in ext} == {adaptive.snap(1e-2 * 10**0.5), adaptive.snap(1e-1)}
    assert sorted(p["seed"] for p in ext) == [0, 0, 1, 1]
    assert all(p["reason"].startswith("extend: best lr 0.01 is the largest lr tried") for p in ext)
    assert plan["per_batch"]["64"]["action"] == "extend" and plan["per_batch"]["8"]["action"] == "recenter"
    assert plan["points"][0]["batch_size"] == 64  # extensions are planned before re-centring


def test_bracketed_optimum_is_recentred_wide_once():
    cfg = cfg_with([1e-4, 3e-4, 1e-3, 3e-3, 1e-2], seeds=(0, 1))
    sweep = sweep_for({8: 1e-3, 64: 2e-3}, grid(cfg))
    plan = adaptive.plan_round(cfg, 2, sweep, [])
    b8 = [p for p in plan["points"] if p["batch_size"] == 8]
    lrs = sorted({p["lr"] for p in b8})
    assert adaptive.recenter_spacing(cfg) == pytest.approx(0.6, abs=0.01)  # 1.2 steps of a half-decade grid
    assert len(lrs) == 3 and math.log10(lrs[2] / lrs[0]) == pytest.approx(1.2, abs=0.01)
    lr_opt = plan["per_batch"]["8"]["lr_opt"]
    assert math.log10(lr_opt) == pytest.approx(-3, abs=0.05) and lrs[1] == adaptive.resolve_lr(lr_opt, {})
    assert [sum(p["lr"] == lr for p in b8) for lr in lrs] == [3, 1, 3]  # seeds_per_point default
    assert all(config.lr_name(p["lr"]) == p["name"].split("_LR")[1] for p in plan["points"])  # an lr IS its name
    # round 3: B=8 and B=64 were re-centred: nothing left to do
    runs = grid(cfg) + [(p["batch_size"], p["lr"], p["seed"]) for p in plan["points"]]
    plan3 = adaptive.plan_round(cfg, 3, sweep_for({8: 1e-3, 64: 2e-3}, runs), [plan])
    assert plan3["points"] == [] and {v["action"] for v in plan3["per_batch"].values()} == {"done"}


def test_a_flat_column_is_recentred_once_then_left():
    cfg = cfg_with([1e-4, 3e-4, 1e-3, 3e-3, 1e-2], seeds=(0, 1))
    sweep = sweep_for({8: 1e-3, 64: 1e-3}, grid(cfg), flat=(64,))
    plan = adaptive.plan_round(cfg, 2, sweep, [])
    assert plan["per_batch"]["64"]["action"] == "recenter" and plan["per_batch"]["64"]["why"].startswith("flat so far")
    runs = grid(cfg) + [(p["batch_size"], p["lr"], p["seed"]) for p in plan["points"]]
    plan3 = adaptive.plan_round(cfg, 3, sweep_for({8: 1e-3, 64: 1e-3}, runs, flat=(64,)), [plan])
    assert plan3["per_batch"]["64"]["action"] == "flat" and plan3["points"] == []


def test_a_planned_lr_named_like_a_run_reuses_it_with_fresh_seeds():
    cfg = cfg_with([1e-4, 3e-4, 1e-3, 3e-3, 1e-2], seeds=(0,), recenter={"spacing_decades": 0.5})
    opt = 10 ** (-3 + 0.5)  # re-centred lrs land on 3.16e-4 .. 3.16e-3: not grid values
    sweep = sweep_for({8: opt, 64: opt}, grid(cfg))
    known = adaptive.known_lrs(cfg, sweep)
    assert adaptive.resolve_lr(1e-3 * (1 + 1e-9), known) == 1e-3  # same name -> that exact lr
    pts = adaptive.plan_round(cfg, 2, sweep, [])["points"]
    at_grid = [p for p in pts if p["lr"] in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)]
    assert all(p["seed"] != 0 for p in at_grid)  # seed 0 already ran there


def test_an_lr_below_the_name_precision_is_refused():
    with pytest.raises(UserError, match="formats as 0.000000"):
        adaptive.resolve_lr(1e-8, {})


def test_budget_cuts_the_plan_and_says_so():
    cfg = cfg_with([1e-4, 3e-4, 1e-3, 3e-3, 1e-2], max_runs=13)
    plan = adaptive.plan_round(cfg, 2, sweep_for({8: 1e-3, 64: 0.05}, grid(cfg)), [])
    assert len(plan["points"]) == 3 and plan["budget"]["reached"] and plan["budget"]["not_planned"] > 0
    assert [p["reason"].split(":")[0] for p in plan["points"]] == ["extend", "extend", "recenter"]
    cfg2 = cfg_with([1e-4, 3e-4, 1e-3, 3e-3, 1e-2], max_runs=10)
    spent = adaptive.plan_round(cfg2, 2, sweep_for({8: 1e-3, 64: 0.05}, grid(cfg2)), [])
    assert spent["points"] == [] and spent["budget"]["reached"]


def test_extensions_stop_at_extend_edges():
    cfg = cfg_with([1e-4, 3e-4, 1e-3], extend_edges=3)
    first = adaptive.plan_round(cfg, 2, sweep_for({8: 1.0, 64: 1.0}, grid(cfg)), [])
    runs = grid(cfg) + [(p["batch_size"], p["lr"], p["seed"]) for p in first["points"]]
    second = adaptive.plan_round(cfg, 3, sweep_for({8: 1.0, 64: 1.0}, runs), [first])
    assert len([p for p in second["points"] if p["batch_size"] == 8]) == 1  # 2 + 1 = extend_edges
    runs += [(p["batch_size"], p["lr"], p["seed"]) for p in second["points"]]
    third = adaptive.plan_round(cfg, 4, sweep_for({8: 1.0, 64: 1.0}, runs), [first, second])
    assert third["points"] == [] and third["per_batch"]["8"]["action"] == "unbracketed"


def test_write_plan_is_deterministic_and_kept(tmp_path):
    cfg = cfg_with([1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    sweep = sweep_for({8: 1e-3, 64: 0.05}, grid(cfg))
    a = adaptive.plan_round(cfg, 2, sweep, [])
    assert a == adaptive.plan_round(cfg, 2, sweep, [])
    out = tmp_path / "rounds" / "round2.json"
    kept = tmp_path / "rounds" / "kept" / "round2.json"
    plan = {**a, "fingerprint": adaptive.fingerprint(cfg)}
    kept.parent.mkdir(parents=True)
    kept.write_text(json.dumps(plan))
    assert adaptive.write_plan(cfg, 2, [], [], out) == plan  # no metrics read: the kept plan is written back
    assert json.loads(out.read_text()) == plan


def test_annotate_marks_rounds_and_resolved_edges():
    result = {"per_batch": [{"batch_size": 64, "lrs": [1e-3, 1e-2, 0.031623], "runs_per_lr": [1, 2, 1], "flags": {}}]}
    plans = [{"round": 2, "budget": {"reached": False}, "per_batch": {"64": {"action": "extend"}}, "grid_lrs": [1e-3, 1e-2],
              "points": [{"batch_size": 64, "lr": 0.031623, "seed": 0, "reason": "extend: edge"},
                         {"batch_size": 64, "lr": 1e-2, "seed": 1, "reason": "recenter: x"}]}]
    adaptive.annotate(result, plans)
    row = result["per_batch"][0]
    assert row["lr_rounds"] == [1, 1, 2] and row["edge_resolved_by_extension"]
    assert result["rounds"]["n"] == 2 and not result["rounds"]["budget_reached"]


def test_wandb_numbers_later_rounds_after_the_grid():
    cfg = cfg_with([1e-3, 1e-2], seeds=(0,), batch_sizes=(8,))
    run = lambda lr, s: {"batch_size": 8, "lr": lr, "seed": s, "final_val_loss": 0.1, "final_train_loss": 0.1,  # noqa: E731
                         "converged": True, "curves": {"step": [1], "train_loss": [0.1], "val_loss": [0.1],
                                                       "learning_rate": [lr]}}
    _, calls = build_log_calls(cfg, [run(1e-3, 0), run(1e-2, 0), run(0.003162, 0), run(0.003162, 1)])
    nums = [(c["config/lr"], c["config/experiment_num"]) for c in calls if "config/experiment_num" in c]
    assert nums == [(1e-3, 1), (1e-2, 2), (0.003162, 3)]


def test_the_adaptive_benchmark_runs_the_package_planner():
    """bench/adaptive_design.py at 2 replicates: both designs fitted, the edge case bracketed."""
    sys.path.insert(0, str(REPO / "bench"))
    import adaptive_design

    row = adaptive_design.run_cell(("sym", 0.01, 0.5, 2, 0))
    assert row["fixed_no_beta"] == 0 and row["adaptive_no_beta"] == 0 and row["runs_adaptive_max"] == 98
    assert abs(row["adaptive_err"]) < 0.2 and row["hw_ratio"] > 0
    edge = adaptive_design.run_edge_cell(("sym", 0.01, 2))
    assert edge["bracketed"] == 1.0 and edge["within_budget"] == 1.0 and edge["fixed_bracketed"] == 0.0


def test_fixed_grids_keep_their_positional_windows():
    """No adaptive grid: windows count positions, so uneven grids (1-3-10 with an odd number of
    gaps, or a gap of a decade) fit exactly as before adaptive rounds existed."""
    for lrs in ([1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2], [1e-4, 1e-3, 2e-3, 3e-3, 1e-2, 1e-1]):
        pos = optima.positions(np.array(lrs))
        assert pos.tolist() == list(range(len(lrs)))
        assert optima._near(pos, np.ones(len(lrs)), 2) == [0, 1, 2, 3, 4]
        assert optima.fit_points(pos, np.array([5, 4, 1, 2, 4, 6.0]), 2)[0] == [1, 2, 3]


def test_lrs_added_between_grid_points_sit_between_positions():
    grid_lrs = [1e-4, 1e-3, 1e-2]
    pos = optima.positions(np.array([1e-5, 1e-4, 10**-3.5, 1e-3, 1e-2, 1e-1]), grid_lrs)
    assert pos == pytest.approx([-1, 0, 0.5, 1, 2, 3])
    assert optima.at_position(0.5, grid_lrs) == pytest.approx(-3.5) and optima.at_position(3, grid_lrs) == pytest.approx(-1)


def test_zero_noise_is_an_infinite_curvature_not_a_crash():
    x = np.arange(5.0)
    assert optima.curvature_t(x, x**2 - 4 * x, 2, np.zeros(5)) == math.inf


def test_recentred_lrs_stay_inside_a_diverged_lr():
    row = {"lr_opt": 1e-3, "diverged_lrs": [2e-3], "flags": {}}
    lrs = adaptive._wanted(row, {"extended": set(), "recentred": False},
                           config.defaults()["sweep"]["adaptive"], 0.6)[1]
    assert [lr for lr, _ in lrs] == pytest.approx([10**-3.6, 1e-3, math.sqrt(1e-3 * 2e-3)])


def test_an_extension_below_the_name_precision_is_dropped_not_fatal():
    cfg = cfg_with([2e-6, 6e-6, 2e-5, 6e-5], seeds=(0,), extend_edges=4)
    plan = adaptive.plan_round(cfg, 2, sweep_for({8: 1e-9, 64: 1e-9}, grid(cfg)), [])
    assert {p["lr"] for p in plan["points"]} == {adaptive.snap(2e-6 / 10**0.5)}  # 6.3e-7; 2e-7 has no name
    assert any("below the run names' precision" in n for n in plan["notes"])
    assert any("runs as 1e-06 (the run names' 6 decimals)" in n for n in plan["notes"])


def test_a_kept_plan_from_another_config_with_runs_is_refused(tmp_path):
    cfg = cfg_with([1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    plan = {**adaptive.plan_round(cfg, 2, sweep_for({8: 1e-3, 64: 0.05}, grid(cfg)), []), "fingerprint": "other"}
    out = tmp_path / "rounds" / "round2.json"
    (out.parent / "kept").mkdir(parents=True)
    (out.parent / "kept" / "round2.json").write_text(json.dumps(plan))
    p = plan["points"][0]
    run = tmp_path / config.run_metrics(p["batch_size"], p["lr"], p["seed"])
    run.parent.mkdir(parents=True)
    run.write_text("{}")
    with pytest.raises(UserError, match="planned under another config"):
        adaptive.write_plan(cfg, 2, [], [], out)
    with pytest.raises(UserError, match="expected 2 or more"):
        adaptive.write_plan(cfg, 1, [], [], out)


def test_a_budget_below_the_grid_is_a_config_error():
    with pytest.raises(UserError, match="sweep.adaptive.max_runs.*below the grid's 10 runs"):
        cfg_with([1e-4, 3e-4, 1e-3, 3e-3, 1e-2], max_runs=9)


def test_an_adaptive_heatmap_puts_each_rows_lrs_on_one_log_axis(tmp_path):
    from matplotlib import image

    from lrscale import plots

    rows = []
    for k, b in enumerate((8, 64)):
        lrs = sorted([10 ** (-4 + 0.5 * j) for j in range(7)] + [10 ** (-3.3 + 0.1 * k + 0.6 * j) for j in range(3)]
                     + [10 ** (-3.1 + 0.2 * k + 0.3 * j) for j in range(3)])
        loss = [None if lr > 0.05 else 0.1 + (math.log10(lr) + 3) ** 2 for lr in lrs]
        rows.append({"batch_size": b, "lrs": lrs, "mean_loss": loss, "lr_opt": 1e-3})
    assert len({lr for r in rows for lr in r["lrs"]}) > 12
    plots.loss_heatmap({"per_batch": rows}, tmp_path / "h.png")
    assert image.imread(tmp_path / "h.png").shape[1] > 500
