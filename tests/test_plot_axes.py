"""Issue 26.2: every plot's axes name what was run. Each plot of fixture sweeps (the seed study's CSV,
whose losses span 4.3–4.8; the CPU demo's; a sweep with a flat batch size) is drawn by the real
plotting code and its tick labels read back from matplotlib's text objects: batch axes ticked at the
batch sizes, no "×10"-style labels on batch, lr and loss axes, and no CI bar across the whole axis."""

import math
import re
from pathlib import Path

import numpy as np
import pytest

from lrscale.analysis import fit, plots
from lrscale.analysis.verdict import lr_ci_ends, lr_interval

GOLDEN = Path(__file__).parent / "golden"
SCIENTIFIC = ("times", "×", "10^", "e+", "e-")  # mathtext 4\times10^{0}, 10^{-3}; 1e-05


def synthetic_runs(result):
    """Curves for training_curves: one short val-loss curve per (B, lr) of the fit, ending at its mean loss."""
    runs = []
    for r in result["per_batch"]:
        for lr, loss in zip(r["lrs"], r["mean_loss"]):
            end = 10.0 if loss is None else loss
            runs.append({"batch_size": r["batch_size"], "lr": lr, "seed": 0, "diverged": loss is None,
                         "curves": {"samples_seen": [r["batch_size"] * s for s in (10, 100, 1000)],
                                    "val_loss": [end * 1.3, end * 1.1, None if loss is None else end]}})
    return runs


@pytest.fixture
def drawn(monkeypatch):
    """Draw the plots of a fit; {plot name: [(xlabel, xticks, ylabel, yticks) per axes]} as rendered."""
    seen = {}
    real = plots._save

    def spy(fig, path):
        fig.canvas.draw()  # the formatters write their labels at draw time
        seen[Path(path).stem] = [(ax.get_xlabel(), _labels(ax.xaxis), ax.get_ylabel(), _labels(ax.yaxis), ax)
                                 for ax in fig.axes]
        real(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    return seen


def _labels(axis):
    lo, hi = sorted(axis.get_view_interval())
    return [t.get_text() for t, v in zip(axis.get_ticklabels(), axis.get_ticklocs())
            if t.get_text() and lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)]


@pytest.mark.parametrize("case", ["seed_study", "demo", "falling_noise_asym_2seeds"])
def test_every_plot_names_what_was_run(case, drawn, tmp_path):
    result = fit.run_fit(GOLDEN / case / "results.csv", out_dir=tmp_path)
    plots.training_curves(synthetic_runs(result), tmp_path / "training_curves.png")
    batches = [str(r["batch_size"]) for r in result["per_batch"]]
    checked = {"batch": 0, "loss": 0, "lr": 0}
    for name, axes in drawn.items():
        for xlabel, xticks, ylabel, yticks, _ in axes:
            for label, ticks in ((xlabel, xticks), (ylabel, yticks)):
                kind = ("batch" if "batch size" in label else "loss" if "loss" in label
                        else "lr" if "lr" in label else None)
                if kind is None:
                    continue
                checked[kind] += 1
                assert ticks, (name, label)
                assert not [t for t in ticks if any(s in t for s in SCIENTIFIC)], (name, label, ticks)
                if kind == "batch":
                    assert ticks == batches, (name, label, ticks)
    assert checked["batch"] >= 2 and checked["loss"] >= 3 and checked["lr"] >= 3, checked


def test_a_narrow_loss_range_gets_a_linear_axis_in_plain_decimals(drawn, tmp_path):
    # the seed study's Phase 2.5 losses span 4.3–4.8: on a log axis they read 4.7×10⁰, 4.6×10⁰
    rows = ["batch_size,lr,final_val_loss,seed,diverged"]
    for b in (32, 64, 128, 256):
        for x in -3.5 + 0.5 * np.arange(6):
            d = x - (-2.5 + 0.5 * math.log10(b / 64))
            rows.append(f"{b},{10 ** x:.6g},{4.3 + 0.15 * d ** 2 + 0.01 * math.log2(b):.5f},0,False")
    (tmp_path / "runs.csv").write_text("\n".join(rows) + "\n")
    fit.run_fit(tmp_path / "runs.csv", out_dir=tmp_path / "out")
    (xlabel, xticks, ylabel, yticks, ax), = drawn["loss_vs_lr"]
    assert ax.get_yscale() == "linear" and yticks and all(float(t) < 5 for t in yticks), yticks
    assert all(t.replace(".", "", 1).isdigit() for t in yticks + xticks), (xticks, yticks)


def test_an_unbounded_ci_is_said_and_drawn_as_an_arrow(drawn, tmp_path):
    lrs = [1e-4, 1e-3, 1e-2]
    assert lr_ci_ends([1.53e-16, 2.02e10], lrs) == (None, None)
    assert lr_interval([1.53e-16, 2.02e10], lrs) == "unbounded"
    assert lr_interval([2e-4, 2.02e10], lrs) == "> 0.0002" and lr_interval([1e-9, 5e-3], lrs) == "< 0.005"
    assert lr_interval([2e-4, 5e-3], lrs) == "[0.0002, 0.005]" and lr_interval(None, lrs) == "—"
    result = fit.run_fit(GOLDEN / "seed_study" / "results.csv", out_dir=tmp_path)  # two flat B: CIs 1e-16..1e+10
    report = (tmp_path / "report.md").read_text()
    per_b = [line.split(" | ")[2] for line in report.splitlines() if re.match(r"\| \d+ \| ", line)]
    assert len(per_b) == len(result["per_batch"]) and "unbounded" in per_b
    assert not [ci for ci in per_b if "e+" in ci or "e-1" in ci], per_b  # never 1e-16..1e+10
    # a flat batch size's CI reaches past the axis: an arrow, and no error bar longer than the axis
    (ax,) = [a for *_, a in drawn["lr_opt_vs_batch"]]
    lo, hi = ax.get_ylim()
    for line in ax.lines:
        y = np.asarray(line.get_ydata(), float)
        assert np.all((y[np.isfinite(y)] >= lo * 0.999) & (y[np.isfinite(y)] <= hi * 1.001)) or line.get_label() \
            .startswith(("power law", "McCandlish", "surge", "joint")), line
    flat = [r for r in result["per_batch"] if r["lr_opt_ci95"] and None in lr_ci_ends(r["lr_opt_ci95"], r["lrs"])]
    arrows = [c for c in ax.texts if getattr(c, "arrow_patch", None) is not None]
    assert flat and len(arrows) >= len(flat)
    assert math.isfinite(lo) and math.isfinite(hi)


def test_table_pages_show_long_numbers_to_four_digits():
    import pandas as pd

    from lrscale.analysis.report import readable, table_page

    assert [readable(c) for c in ("0.33759316079318524", "1796281693.8176343", "0.000123456789", "-0.1234567")] == \
        ["0.3376", "1796281694", "0.0001235", "-0.1235"]
    kept = ("8", "0.0001", "1e-05", "B8_LR0.000100", "d0bda9bbba0115d8", "", "False", "0.075")
    assert [readable(c) for c in kept] == list(kept)  # short numbers, names and flags as written
    page = table_page("t", pd.DataFrame({"lr": ["0.0031622776601683794"], "loss": [None]}, dtype=object))
    assert "<td>0.003162</td>" in page and "0.0031622776" not in page and "<td></td>" in page


def test_every_plot_caption_says_what_to_look_for():
    from lrscale import PLOTS

    captions = Path(__file__).parents[1] / "workflow" / "report"
    for name in [*PLOTS, "training_curves_batch", "lr_opt_by_horizon", "b_crit"]:
        assert "Look for:" in (captions / f"{name}.rst").read_text(), name
