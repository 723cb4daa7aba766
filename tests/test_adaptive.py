"""Issue 11: the adaptive planner on sweeps with a known optimum (pure functions, no training)."""

import json
import math
import sys

import numpy as np
import pytest
import yaml

from conftest import REPO, tiny_config
from lrscale import adaptive, config
from lrscale.analysis import optima
from lrscale.errors import UserError
from lrscale.analysis.sweep_table import from_records
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


def test_a_flat_column_is_recentred_then_reseeded_while_flat():
    cfg = cfg_with([1e-4, 3e-4, 1e-3, 3e-3, 1e-2], seeds=(0, 1))
    sweep = sweep_for({8: 1e-3, 64: 1e-3}, grid(cfg), flat=(64,))
    plan = adaptive.plan_round(cfg, 2, sweep, [])
    assert plan["per_batch"]["64"]["action"] == "recenter" and plan["per_batch"]["64"]["why"].startswith("flat so far")
    runs = grid(cfg) + [(p["batch_size"], p["lr"], p["seed"]) for p in plan["points"]]
    plan3 = adaptive.plan_round(cfg, 3, sweep_for({8: 1e-3, 64: 1e-3}, runs, flat=(64,)), [plan])
    again = [p for p in plan3["points"] if p["batch_size"] == 64]
    assert plan3["per_batch"]["64"]["action"] == "reseed" and plan3["per_batch"]["64"]["open"]
    assert len(again) == 7 and all(p["reason"].startswith("reseed: still not identifiable") for p in again)
    assert [p for p in plan3["points"] if p["batch_size"] == 8] == []  # B=8 is done
    # a loss that does not depend on lr stays flat: reseeded MAX_RESEEDS rounds, then left (said so)
    plans = [plan, plan3]
    for r in range(4, 4 + adaptive.MAX_RESEEDS):
        runs += [(p["batch_size"], p["lr"], p["seed"]) for p in plans[-1]["points"]]
        plans.append(adaptive.plan_round(cfg, r, sweep_for({8: 1e-3, 64: 1e-3}, runs, flat=(64,)), plans))
    assert [p["per_batch"]["64"]["action"] for p in plans] == ["recenter", "reseed", "reseed", "unresolved"]
    assert plans[-1]["points"] == [] and plans[-1]["per_batch"]["64"]["open"]
    assert plans[-1]["per_batch"]["64"]["why"].startswith("still not identifiable after 2 reseeds")


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
    # the answer's β (the joint model's) and its verdict are scored for both designs
    assert row["fixed_no_joint"] == 0 and row["adaptive_no_joint"] == 0 and abs(row["adaptive_joint_err"]) < 0.2
    assert row["joint_hw_ratio"] > 0
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

    from lrscale.analysis import plots

    rows = []
    for k, b in enumerate((8, 64)):
        lrs = sorted([10 ** (-4 + 0.5 * j) for j in range(7)] + [10 ** (-3.3 + 0.1 * k + 0.6 * j) for j in range(3)]
                     + [10 ** (-3.1 + 0.2 * k + 0.3 * j) for j in range(3)])
        loss = [None if lr > 0.05 else 0.1 + (math.log10(lr) + 3) ** 2 for lr in lrs]
        rows.append({"batch_size": b, "lrs": lrs, "mean_loss": loss, "lr_opt": 1e-3})
    assert len({lr for r in rows for lr in r["lrs"]}) > 12
    plots.loss_heatmap({"per_batch": rows}, tmp_path / "h.png")
    assert image.imread(tmp_path / "h.png").shape[1] > 500


# Issue 28: rounds are a ceiling; the extension step grows; a flat optimum gets more seeds.
PHASE2_ADAPTIVE = yaml.safe_load((REPO / "config" / "phase_2_adaptive.yaml").read_text())["sweep"]["adaptive"]


def issue_cfg(**adapt):
    """The issue's sweep: B = 8 and 512, lrs 1e-4, 3e-4, 1e-3, one seed, config/phase_2_adaptive.yaml's adaptive block."""
    return config.validate(tiny_config(sweep={"name": "i28", "batch_sizes": [8, 512], "lrs": [1e-4, 3e-4, 1e-3],
                                              "seeds": [0], "adaptive": {**PHASE2_ADAPTIVE, **adapt}}))


def simulate(cfg, optima, seed, curvature=0.1, sigma=0.01):
    """Every round through the real planner, each run's loss from a parabola in log10 lr (0.04 at
    optima[B], Gaussian noise from `seed`; diverged more than 1.25 decades above it); the final fit
    (as `lrscale fit --plans` makes it) and the plans."""
    from lrscale.analysis.fit import analyse

    rng, records, plans = np.random.default_rng(seed), [], []

    def run(points):
        for b, lr, s in points:
            d = math.log10(lr / optima[b])
            loss = math.nan if d > 1.25 else 0.04 + curvature * d**2 + rng.normal(0, sigma)
            records.append((b, lr, s, loss, math.nan, math.nan, math.nan))

    run(grid(cfg))
    for r in range(2, cfg["sweep"]["adaptive"]["rounds"] + 1):
        plans.append(adaptive.plan_round(cfg, r, from_records(records, "lrscale", 0.1), plans))
        run([(p["batch_size"], p["lr"], p["seed"]) for p in plans[-1]["points"]])
    result = analyse(adaptive.set_grid(from_records(records, "lrscale", 0.1), cfg["sweep"]["lrs"]), bootstrap=0)
    adaptive.annotate(result, plans)
    return result, plans, len(records)


@pytest.mark.parametrize("optima", [{8: 3e-4, 512: 10**-1.5}, {8: 3e-4, 512: 1e-1}, {8: 10**-5.5, 512: 3e-4}],
                         ids=["1.5 decades above", "2 decades above", "1.5 decades below"])
def test_an_optimum_far_beyond_the_grid_ends_bracketed_and_identified(optima):
    """Ten noise draws of one seed per run (σ = 0.01, about the issue's): within the rounds ceiling
    and max_runs, every B ends bracketed and identifiable (fitted, no blocking flag) near its truth
    in at least 9 (one noisy run at the edge can still cost a draw its last extension)."""
    cfg = issue_cfg()
    ends = [simulate(cfg, optima, seed) for seed in range(10)]
    good = [result for result, _, _ in ends if all(r["included"] for r in result["per_batch"])]
    assert len(good) >= 9, [r["rounds"].get("stopped") for r, _, _ in ends]
    for result, plans, runs in ends:
        assert len(plans) == PHASE2_ADAPTIVE["rounds"] - 1 and runs <= PHASE2_ADAPTIVE["max_runs"]
        if any(result is g for g in good):
            assert result["rounds"]["stopped"].startswith("every batch size bracketed and identifiable after")
            for r in result["per_batch"]:
                assert abs(math.log10(r["lr_opt"] / optima[r["batch_size"]])) < 0.3, (r["batch_size"], r["lr_opt"])
        else:  # said, not silent
            assert result["rounds"]["unresolved"] and " still " in result["rounds"]["stopped"]


def test_the_extension_step_doubles_while_the_edge_falls_steeply_and_not_when_it_bends():
    cfg = issue_cfg()
    steep = adaptive.plan_round(cfg, 2, sweep_for({8: 3e-4, 512: 0.1}, grid(cfg), noise=0.0), [])["per_batch"]["512"]
    assert steep["action"] == "extend" and "adds lr 0.01, 0.1 (step 1 decades" in steep["why"]
    near = adaptive.plan_round(cfg, 2, sweep_for({8: 3e-4, 512: 3e-3}, grid(cfg), noise=0.0), [])["per_batch"]["512"]
    assert near["why"].endswith("adds lr 0.00316, 0.01")  # bending over toward a close vertex: the base step


# The issue's tiny sweep (teacher_student, 300 steps) as it ended at rounds: 3: B=512 flagged flat.
ISSUE_RUNS = [(8, 1e-4, 0, 0.4778), (8, 0.000251, 0, 0.1127), (8, 0.000251, 1, 0.0882), (8, 0.000251, 2, 0.0892),
              (8, 3e-4, 0, 0.0908), (8, 0.000999, 0, 0.0838), (8, 1e-3, 0, 0.0838), (8, 0.003162, 0, 0.0916),
              (8, 0.003978, 0, 0.0933), (8, 0.003978, 1, 0.0893), (8, 0.003978, 2, 0.0894), (8, 0.01, 0, 0.1022),
              (512, 1e-4, 0, 0.0903), (512, 3e-4, 0, 0.0702), (512, 1e-3, 0, 0.0686), (512, 0.003162, 0, 0.0653),
              (512, 0.01, 0, 0.0521), (512, 0.031623, 0, 0.0432), (512, 0.1, 0, 0.0709)]
ISSUE_PLANS = [{"round": 2, "points": [{"batch_size": b, "lr": lr, "seed": 0, "reason": "extend: edge"}
                                       for b in (8, 512) for lr in (0.003162, 0.01)]},
               {"round": 3, "points": [{"batch_size": 8, "lr": lr, "seed": s, "reason": "recenter: flat so far"}
                                       for lr, s in [(0.000251, 0), (0.000251, 1), (0.000251, 2), (0.000999, 0),
                                                     (0.003978, 0), (0.003978, 1), (0.003978, 2)]]
               + [{"batch_size": 512, "lr": lr, "seed": 0, "reason": "extend: edge"} for lr in (0.031623, 0.1)]}]


def issue_sweep(extra=()):
    return from_records([(b, lr, s, loss, math.nan, math.nan, math.nan) for b, lr, s, loss in [*ISSUE_RUNS, *extra]],
                        "lrscale", 0.1)


def test_the_issues_flat_optimum_gets_seeds_at_and_around_its_best_lr():
    cfg = issue_cfg()
    plan4 = adaptive.plan_round(cfg, 4, issue_sweep(), ISSUE_PLANS)
    b512 = plan4["per_batch"]["512"]
    assert b512["action"] == "recenter" and "flat" in b512["why"] and b512["open"]
    pts = [p for p in plan4["points"] if p["batch_size"] == 512]
    lrs = sorted({p["lr"] for p in pts})  # around the best lr 0.0316 (loss 0.043), not the unpinned vertex
    assert lrs == [adaptive.snap(0.031623 / 10**0.6), 0.031623, adaptive.snap(0.031623 * 10**0.6)]
    assert [sum(p["lr"] == lr for p in pts) for lr in lrs] == [3, 1, 3] and (512, 0.031623, 0) not in {
        (p["batch_size"], p["lr"], p["seed"]) for p in pts}
    # those runs, from a curve as shallow as the issue's (0.043 at 0.0316, ~0.06 half a decade out): still flat
    rng = np.random.default_rng(3)
    ran = [(512, p["lr"], p["seed"], 0.045 + 0.04 * math.log10(p["lr"] / 0.0316) ** 2 + rng.normal(0, 0.01)) for p in pts]
    plan5 = adaptive.plan_round(cfg, 5, issue_sweep(ran), [*ISSUE_PLANS, plan4])
    b512 = plan5["per_batch"]["512"]
    assert b512["action"] == "reseed" and "flat" in b512["why"], b512  # the old planner: "flat", nothing
    again = [p for p in plan5["points"] if p["batch_size"] == 512]
    best = min(((lr, np.mean([x[3] for x in [*ISSUE_RUNS, *ran] if x[0] == 512 and x[1] == lr]))
                for lr in {x[1] for x in [*ISSUE_RUNS, *ran] if x[0] == 512}), key=lambda t: t[1])[0]
    assert sorted({p["lr"] for p in again}) == [adaptive.snap(best / 10**0.6), best, adaptive.snap(best * 10**0.6)]
    assert len(again) == 7 and not {(p["lr"], p["seed"]) for p in again} & {(x[1], x[2]) for x in [*ISSUE_RUNS, *ran]}


def test_the_rounds_ceiling_and_the_budget_are_said_plainly(tmp_path, capsys):
    from lrscale.analysis import report

    cfg = cfg_with([1e-4, 3e-4, 1e-3, 3e-3, 1e-2], rounds=2, max_runs=13)
    plan = {**adaptive.plan_round(cfg, 2, sweep_for({8: 1e-3, 64: 0.05}, grid(cfg)), []),
            "fingerprint": adaptive.fingerprint(cfg)}
    out = tmp_path / "rounds" / "round2.json"
    out.parent.joinpath("kept").mkdir(parents=True)
    out.parent.joinpath("kept", "round2.json").write_text(json.dumps(plan))
    adaptive.write_plan(cfg, 2, [], [], out)
    log = capsys.readouterr().out
    assert "max_runs budget of 13 runs reached: not planned: B=8 6 recenter run(s)" in log
    assert "rounds ceiling 2 reached: this is the last round, and before its runs B=64 (extend) is not yet" in log
    flat = {"batch_size": 512, "lrs": [0.01, 0.0316, 0.1], "runs_per_lr": [1, 1, 1], "flags": {"flat": "t = 2.06 < 3"}}
    plans = [{"round": 2, "budget": {"reached": False, "max_runs": 112}, "grid_lrs": [1e-3], "points": [],
              "per_batch": {"512": {"action": "extend", "why": "edge"}}}]
    for reached, said in [(False, "rounds ceiling 2 reached: B=512 still flat (t = 2.06 < 3)"),
                          (True, "max_runs budget of 112 runs reached: B=512 still flat (t = 2.06 < 3)")]:
        plans[0]["budget"]["reached"] = reached
        result = {"per_batch": [{**flat, "flags": dict(flat["flags"])},
                                {"batch_size": 8, "lrs": [1e-3], "runs_per_lr": [3], "flags": {"grad_clipped": "x"}}]}
        adaptive.annotate(result, plans)
        assert result["rounds"]["stopped"] == said
        assert result["rounds"]["unresolved"] == [{"batch_size": 512, "flags": ["flat"], "cause": said.split(":")[0],
                                                   "text": "B=512 still flat (t = 2.06 < 3)"}]
        assert f"- {said}" in report.rounds_section(result)
    done = {"round": 3, "budget": {"reached": False, "max_runs": 112}, "points": [],
            "per_batch": {"512": {"action": "done", "why": "bracketed and identifiable, already re-centred"}}}
    result = {"per_batch": [{**flat, "flags": {}}]}
    adaptive.annotate(result, [plans[0], done, {**done, "round": 4}])
    assert result["rounds"]["stopped"] == ("every batch size bracketed and identifiable after round 2 of 4 "
                                           "(later rounds planned nothing)")
    assert result["rounds"]["unresolved"] == []
    plans[0]["per_batch"]["512"] = {"action": "unbracketed", "why": "not bracketed and its 4 extension(s) are spent"}
    result = {"per_batch": [{**flat, "flags": {"edge": "best lr 0.1 is the largest lr tried"}}]}
    adaptive.annotate(result, plans)
    assert result["rounds"]["stopped"] == ("no extension left (not bracketed and its 4 extension(s) are spent): "
                                           "B=512 still edge (best lr 0.1 is the largest lr tried)")
