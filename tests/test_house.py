"""Issue 22 (house): the rules and the typed result the analysis modules share."""

import math

import numpy as np
import pytest

from lrscale import adaptive
from lrscale.analysis import fit, optima
from lrscale.analysis.locators import Optimum

LRS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
NAN = math.nan


@pytest.mark.parametrize("mean", [
    [0.5, 0.6, 0.7, 0.8, 0.9],  # best at the smallest lr
    [0.9, 0.8, 0.7, 0.6, 0.5],  # best at the largest
    [0.9, 0.8, 0.5, NAN, NAN],  # upper neighbour diverged
    [NAN, 0.5, 0.6, 0.7, 0.8],  # lower neighbour diverged
    [0.9, NAN, 0.5, NAN, 0.9],  # both neighbours diverged: the upper one is named
    [0.9, 0.8, 0.7, NAN, 0.5],  # best at the largest, its lower neighbour diverged: the edge first
])
def test_the_edge_flag_and_the_planner_add_the_same_lrs(mean):
    mean = np.array(mean)
    i = optima.best_index(mean)
    step = optima.spacing(LRS)
    flagged = optima._edge_reason(LRS, np.isfinite(mean), i, step)
    planned, _ = adaptive._extension_lrs({"lrs": LRS, "mean_loss": [None if math.isnan(v) else v for v in mean]},
                                         step, grow=False)
    assert flagged is not None and planned
    assert flagged.endswith(f"add lr {', '.join(f'{v:.3g}' for v in planned)} to bracket it")


def test_a_bracketed_optimum_adds_nothing():
    mean = np.array([0.9, 0.7, 0.5, 0.7, 0.9])
    assert optima.unbracketed(np.isfinite(mean), 2) is None
    assert optima._edge_reason(LRS, np.isfinite(mean), 2, 0.5) is None


def test_an_optimum_row_is_fit_json_with_the_loss_sigma_aliases():
    o = Optimum(8, LRS, [0.5] * 5, 2, [2] * 5, [], lr_opt=1e-3, noise_sigma=0.01, noise_sigma_dof=12, method="quadratic")
    row = o.row()
    assert (row["loss_sigma"], row["loss_sigma_dof"]) == (0.01, 12)
    assert not {"locator", "se_noise_log10", "dof"} & set(row)  # internal fields stay out of fit.json
    assert list(row)[:2] == ["batch_size", "lrs"]


def test_every_optimum_is_redrawn_by_the_locator_that_placed_it():
    rng = np.random.default_rng(0)
    lrs = 10 ** np.linspace(-4, -1, 7)
    losses = {b: 1 + 0.2 * (np.log10(lrs) - np.log10(1e-3 * (b / 8) ** 0.5)) ** 2 + rng.normal(0, 0.002, (2, 7))
              for b in (8, 16, 32, 64, 128)}
    sweep = fit.Sweep(list(losses), {b: lrs for b in losses}, losses, {b: None for b in losses}, "synthetic", [0, 1])
    r = fit.analyse(sweep, bootstrap=50)
    methods = {p["method"] for p in r["per_batch"]}
    assert methods and all(m for m in methods)
    assert len(r["boot_betas"]) == 50 and np.std(r["boot_betas"]) > 0
    assert r["locating"].startswith("Located by")


def test_a_sweep_from_records_refuses_a_duplicate_or_no_run():
    from lrscale.analysis.sweep_table import from_records

    run = (8, 1e-3, 0, 1.0, math.nan, math.nan, math.nan)
    with pytest.raises(ValueError, match="batch_size 8, lr 0.001, seed 0 given twice"):
        from_records([run, run], "lrscale", 0.1)
    with pytest.raises(ValueError, match="no runs"):
        from_records([], "lrscale", 0.1)


def test_the_deleted_shared_shape_keeps_its_fit_json_keys():
    # issue 23 deleted the shared-shape locator (the joint model replaces it); fit.json is a public contract,
    # so its keys stay, saying so, and the per-B optima are the local fit's
    rng = np.random.default_rng(1)
    lrs = 10 ** np.linspace(-4, -1, 7)
    losses = {b: 1 + 0.2 * (np.log10(lrs) - np.log10(1e-3 * (b / 8) ** 0.5)) ** 2 + rng.normal(0, 0.002, (2, 7))
              for b in (8, 16, 32, 64, 128)}
    sweep = fit.Sweep(list(losses), {b: lrs for b in losses}, losses, {b: None for b in losses}, "synthetic", [0, 1])
    r = fit.analyse(sweep, bootstrap=0)
    assert r["shared_shape"] == {"used": False, "reason": "deleted in issue 23: the joint model (surface) replaces it",
                                 "shapes_differ": None}
    assert r["shape_bias_log10"]["model"] == "floor"
    assert all(p["lr_opt_vertex"] is None and p["local_fit"] is None for p in r["per_batch"])
    assert {p["method"] for p in r["per_batch"]} == {"quadratic"} and r["surface"]["beta"] is not None
