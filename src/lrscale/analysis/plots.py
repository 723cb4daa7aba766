"""The six analysis plots (PNG). One style: log axes, one colour per batch size (viridis)."""

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from .. import CURVES_PER_BATCH, PLOTS  # noqa: E402
from ..fileio import atomic_write_bytes  # noqa: E402
from .names import GRAD_CLIPPED, MCCANDLISH, POWER_LAW, SURGE  # noqa: E402
from .verdict import interval, lr_ci_ends  # noqa: E402

REF_STYLE = {0.5: ":", 0.667: "--", 1.0: "-."}


def _save(fig, path: Path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _colours(n):
    return plt.cm.viridis(np.linspace(0, 0.9, max(n, 1)))


FORM_STYLE = {POWER_LAW: ("C0", "power law"), MCCANDLISH: ("C1", "McCandlish"), SURGE: ("C2", "surge")}


def plain(v, digits=3) -> str:
    """A number in plain decimals (0.00005, 2000), never 5e-05 or 2×10³."""
    return np.format_float_positional(float(f"{v:.{digits}g}"), trim="-")


def batch_axis(axis, batch_sizes) -> None:
    """A log batch-size axis ticked at the batch sizes run (8, 16, …), not 10¹, 10²."""
    axis.set_ticks(sorted(batch_sizes), [str(b) for b in sorted(batch_sizes)])
    axis.set_minor_formatter(NullFormatter())


def plain_log_axis(axis) -> None:
    """A log axis in plain decimals (0.002, not 2×10⁻³), no minor labels; ticks 1-2-5 over up to 2
    decades, 1-3 up to 4, decades beyond (so that labels never run into each other). Call it after
    the data are drawn (it reads the axis' span)."""
    lo, hi = sorted(abs(v) for v in axis.get_view_interval())
    decades = math.log10(hi / lo) if lo > 0 and hi > 0 else 1.0
    axis.set_major_locator(LogLocator(subs=(1, 2, 5) if decades <= 2 else (1, 3) if decades <= 4 else (1,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: plain(v)))
    axis.set_minor_formatter(NullFormatter())


def loss_axis(ax, values) -> None:
    """The loss on y: linear with plain decimals when it spans less than 3x (4.3–4.8 on a log scale
    reads 4.7×10⁰), else log with 1-2-5 plain ticks."""
    finite = [v for v in values if v is not None and np.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) >= 3:
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
    else:
        ax.set_yscale("linear")
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)


def _points(ax, rows, limits):
    """Per-B lr_opt with its 95% CI: filled = used in the fit, hollow grey = excluded (flags named);
    a CI end the data do not bound (lr_ci_ends) or past the axis `limits` is an arrow to the edge."""
    for r in rows:
        style = dict(color="black", mfc="black") if r["included"] else dict(color="grey", mfc="none")
        _ci_bar(ax, r["batch_size"], r, limits, ms=6, zorder=5, **style)
        notes = [k for k in r["flags"] if k != GRAD_CLIPPED or not r["included"]]
        if GRAD_CLIPPED in r["flags"]:
            ax.plot([r["batch_size"]], [r["lr_opt"]], "o", ms=13, mfc="none", mec="red", zorder=6)
        if not r["included"] or notes:
            ax.annotate(",".join(notes) or "excluded", (r["batch_size"], r["lr_opt"]), textcoords="offset points",
                        xytext=(6, 6), fontsize=8, color="grey")


def _ci_bar(ax, x, r, limits, **style) -> None:
    """One per-B lr_opt at x with its 95% CI; an end the data do not bound (lr_ci_ends) or past the
    axis `limits` is an arrow to the axis' edge, not a bar across the whole axis."""
    y, ci = r["lr_opt"], r.get("lr_opt_ci95")
    lo, hi = lr_ci_ends(ci, r["lrs"])
    lo_open, hi_open = ci is not None and (lo is None or lo < limits[0]), ci is not None and (hi is None or hi > limits[1])
    yerr = None if ci is None else [[0 if lo_open else max(y - lo, 0)], [0 if hi_open else max(hi - y, 0)]]
    ax.errorbar([x], [y], yerr=yerr, capsize=3, ls="none", marker="o", **style)
    for is_open, edge in ((lo_open, limits[0]), (hi_open, limits[1])):
        if is_open:
            ax.annotate("", xy=(x, edge), xytext=(x, y), arrowprops=dict(arrowstyle="->", color=style["color"], lw=1))


def _lr_limits(per_batch_rows) -> tuple:
    """The lrs swept, half a decade each side: a CI reaching past them (flat, edge) says no more."""
    tried = [lr for r in per_batch_rows for lr in r["lrs"]]
    return (min(tried) / 10**0.5, max(tried) * 10**0.5) if tried else (1e-6, 1.0)


def lr_opt_vs_batch(result, path):
    fig, ax = plt.subplots(figsize=(7, 5))
    rows = [r for r in result["per_batch"] if r["lr_opt"] is not None]
    limits = _lr_limits(result["per_batch"])
    _points(ax, rows, limits)
    used = [r for r in rows if r["included"]]
    if result.get("forms"):
        b_used = [r["batch_size"] for r in used]
        for name, fit in result["forms"].items():
            colour, label = FORM_STYLE[name]
            best = name == result["preferred_form"]
            band = fit["band95"]  # computed by the fit (fit.json), drawn here
            bb = band["batch_size"]
            ax.fill_between(bb, band["low"], band["high"], color=colour, alpha=0.22 if best else 0.07, lw=0)
            if name == POWER_LAW:
                extra = f" β = {fit['beta']:.3f}"
            elif fit["b_noise_unbounded"] or not min(b_used) / 10 < fit["b_noise"] < 10 * max(b_used):
                extra = " B_noise off the B range"
            else:
                extra = f" B_noise = {fit['b_noise']:.3g}"
            ax.plot(bb, band["lr_opt"], color=colour, lw=2.4 if best else 1.0, ls="-" if best else "--",
                    label=f"{label}:{extra}, χ² {fit['chi2']:.1f}" + (" (preferred)" if best else ""))
        if any(GRAD_CLIPPED in r["flags"] for r in rows):
            ax.plot([], [], "o", ms=10, mfc="none", mec="red", label="grad clipped on most steps")
    else:
        ax.text(0.5, 0.5, "no form fitted:\nfewer than 3 usable batch sizes", transform=ax.transAxes, ha="center")
    joint = result.get("surface") or {}
    if joint.get("beta") is not None:  # the answer's estimate: the joint model's power law over the B it used
        bs = sorted(int(b) for b in joint["lr_opt"])
        bend = joint["bend"]
        ax.plot(bs, [joint["lr_opt"][str(b)] for b in bs], color="black", lw=1.6, ls=":",
                label=f"joint model: β = {joint['beta']:.3f} {interval(joint['ci95'], '.3f')}"
                + (f"; bends (p = {bend['p_value']:.2g})" if bend["bends"] else ""))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, title=f"preferred form: {result['preferred_form']}", title_fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="lr_opt (95% CI; arrow: unbounded)",
           title="Optimal lr vs batch size: fitted forms with 95% bands", ylim=limits)
    batch_axis(ax.xaxis, [r["batch_size"] for r in result["per_batch"]])
    plain_log_axis(ax.yaxis)
    _save(fig, path)


def loss_vs_lr(result, path):
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    cols = _colours(len(result["per_batch"]))
    for c, r in zip(cols, result["per_batch"]):
        lrs, mean = np.array(r["lrs"]), np.array([np.nan if v is None else v for v in r["mean_loss"]])
        ax.plot(lrs, mean, "o-", color=c, ms=4, lw=1, label=f"B={r['batch_size']}")
        div = ~np.isfinite(mean)
        if div.any():
            top = np.nanmax(mean) if np.isfinite(mean).any() else 1.0
            ax.plot(lrs[div], np.full(div.sum(), top), "x", color=c, ms=8)
        coef = r.get("parabola")
        if coef:
            i = int(np.argmin(np.abs(lrs - r["grid_best_lr"])))  # drawn over the points it was fitted to
            x = np.linspace(np.log10(lrs[max(i - 2, 0)]), np.log10(lrs[min(i + 2, len(lrs) - 1)]), 100)
            y = np.polyval(coef, x)
            keep = y <= np.nanmax(mean)
            ax.plot(10 ** x[keep], y[keep], color=c, lw=0.8, ls="--")
        later = np.array(r.get("lr_rounds") or [1] * len(lrs)) > 1
        if later.any():  # adaptive sweeps: the lrs a later round added
            ax.plot(lrs[later], mean[later], "o", color="none", mec="black", mew=1.0, ms=8)
        if r["lr_opt"] is not None:
            ax.plot([r["lr_opt"]], [r["loss_at_opt"]], "*", color=c, ms=13, mec="black", mew=0.5)
    title = "Loss vs lr (★ optimum, × diverged, -- parabola"
    if any(max(r.get("lr_rounds") or [1]) > 1 for r in result["per_batch"]):
        ax.plot([], [], "o", color="none", mec="black", mew=1.0, ms=8, label="added in round ≥ 2")
    ax.set(xscale="log", xlabel="peak lr", ylabel="final val loss (seed mean)", title=title + ")")
    plain_log_axis(ax.xaxis)
    loss_axis(ax, [v for r in result["per_batch"] for v in r["mean_loss"]])
    ax.legend(fontsize=8, ncol=2)
    _save(fig, path)


def loss_heatmap(result, path):
    all_lrs = sorted({lr for r in result["per_batch"] for lr in r["lrs"]})
    if any(r["lrs"] != all_lrs for r in result["per_batch"]) and len(all_lrs) > 12:
        return _loss_heatmap_log_x(result, path)  # an adaptive sweep: every B has lrs of its own
    import pandas as pd

    bs = [r["batch_size"] for r in result["per_batch"]]
    cells = pd.DataFrame([(r["batch_size"], lr, np.nan if v is None else v) for r in result["per_batch"]
                          for lr, v in zip(r["lrs"], r["mean_loss"])], columns=["batch_size", "lr", "loss"])
    grid = cells.pivot(index="batch_size", columns="lr", values="loss").reindex(index=bs, columns=all_lrs)
    grid = grid.to_numpy(float)  # B x lr, NaN: diverged or not run
    fig, ax = plt.subplots(figsize=(7, 4.8))
    with np.errstate(invalid="ignore", divide="ignore"):
        im = ax.imshow(np.log10(grid), cmap="magma_r", aspect="auto")
    fig.colorbar(im, ax=ax, label="log10 final val loss")
    for i, r in enumerate(result["per_batch"]):
        for j, lr in enumerate(all_lrs):
            if lr in r["lrs"] and not np.isfinite(grid[i, j]):
                ax.text(j, i, "×", ha="center", va="center", color="red")
        if r["lr_opt"] is not None:
            j = np.interp(np.log10(r["lr_opt"]), np.log10(all_lrs), np.arange(len(all_lrs)))
            ax.plot(j, i, "*", color="cyan", ms=12, mec="black")
    ax.set_xticks(range(len(all_lrs)), [plain(v, 2) for v in all_lrs], rotation=45)
    ax.set_yticks(range(len(bs)), bs)
    ax.set(xlabel="peak lr", ylabel="batch size", title="Final val loss (× diverged, ★ lr_opt)")
    _save(fig, path)


def _loss_heatmap_log_x(result, path):
    """The heatmap on a log lr axis, each row with its own cells (from midway to each neighbour):
    an adaptive sweep's rows do not share columns."""
    fig, ax = plt.subplots(figsize=(7, 4.8))
    finite = [v for r in result["per_batch"] for v in r["mean_loss"] if v is not None]
    norm = plt.Normalize(np.log10(min(finite)), np.log10(max(finite))) if finite else None
    for i, r in enumerate(result["per_batch"]):
        x = np.log10(r["lrs"])
        mid = (x[1:] + x[:-1]) / 2
        edges = np.concatenate([[x[0] - (mid[0] - x[0] if len(mid) else 0.25)], mid,
                                [x[-1] + (x[-1] - mid[-1] if len(mid) else 0.25)]])
        vals = np.array([[np.nan if v is None else np.log10(v) for v in r["mean_loss"]]])
        im = ax.pcolormesh(10**edges, [i - 0.5, i + 0.5], vals, cmap="magma_r", norm=norm)
        div = [lr for lr, v in zip(r["lrs"], r["mean_loss"]) if v is None]
        ax.plot(div, [i] * len(div), "x", color="red", ms=7, ls="none")
        if r["lr_opt"] is not None:
            ax.plot(r["lr_opt"], i, "*", color="cyan", ms=12, mec="black")
    fig.colorbar(im, ax=ax, label="log10 final val loss")
    ax.set_xscale("log")
    ax.set_ylim(len(result["per_batch"]) - 0.5, -0.5)
    ax.set_yticks(range(len(result["per_batch"])), [r["batch_size"] for r in result["per_batch"]])
    ax.set(xlabel="peak lr", ylabel="batch size", title="Final val loss (× diverged, ★ lr_opt)")
    _save(fig, path)


def training_curves(runs, path):
    """Validation curves of the given runs (validated metrics.json contents), one panel per B,
    one colour per lr (seeds share it), diverged runs dashed; one legend for the figure."""
    bs = sorted({m["batch_size"] for m in runs})
    n = max(len(bs), 1)
    ncol = min(4, n)
    nrow = -(-n // ncol)
    size = (3.4 * ncol + 1.2, 2.9 * nrow) if n > 1 else (8.0, 4.2)  # one B (the report's per-B plots): larger
    fig, axes = plt.subplots(nrow, ncol, figsize=size, squeeze=False, sharey=True, layout="constrained")
    lrs = sorted({m["lr"] for m in runs})
    cols = dict(zip(lrs, plt.cm.plasma(np.linspace(0, 0.9, max(len(lrs), 1)))))
    for ax, b in zip(axes.flat, bs):
        for lr in lrs:
            _seed_curves(ax, [m for m in runs if m["batch_size"] == b and m["lr"] == lr], cols[lr])
        ax.set(xscale="log", title=f"B={b}", xlabel="samples seen")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # a run spans ~2 decades: 1-2-5 ticks
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 200, 500, 1k, 2k: short enough not to collide
        ax.xaxis.set_minor_formatter(NullFormatter())
    for ax in axes.flat[len(bs):]:
        ax.axis("off")
    if not runs:
        axes.flat[0].text(0.5, 0.5, "no metrics files given", ha="center", transform=axes.flat[0].transAxes)
    else:
        for row in axes:
            row[0].set_ylabel("val loss")
        loss_axis(axes.flat[0], [v for m in runs for v in m["curves"]["val_loss"]])  # shared by every panel
        handles = [Line2D([], [], color=cols[lr], label=f"{lr:.2g}") for lr in lrs]
        handles.append(Line2D([], [], color="grey", ls="--", label="diverged"))
        fig.legend(handles=handles, title="peak lr", loc="outside right center", fontsize=8)
    seeds = max((sum(1 for m in runs if (m["batch_size"], m["lr"]) == k) for k in {(m["batch_size"], m["lr"]) for m in runs}),
                default=1)
    fig.suptitle("Validation curves per batch size (one colour per lr" +
                 ("; line: mean over seeds, band: their range)" if seeds > 1 else ")"))
    _save(fig, path)


def _seed_curves(ax, runs, colour):
    """One (B, lr): the seeds' mean val loss with their range as a light band (diverged seeds and
    seeds evaluated at other points drawn on their own, thin; a diverged one dashed)."""
    ok = [m for m in runs if not m["diverged"]]
    steps = ok[0]["curves"]["samples_seen"] if ok else None
    together = [m for m in ok if m["curves"]["samples_seen"] == steps]
    for m in [m for m in runs if m not in together]:
        val = [np.nan if v is None else v for v in m["curves"]["val_loss"]]
        ax.plot(m["curves"]["samples_seen"], val, color=colour, lw=0.8, ls="--" if m["diverged"] else "-")
    if together:
        val = np.array([[np.nan if v is None else v for v in m["curves"]["val_loss"]] for m in together], float)
        ax.plot(steps, val.mean(axis=0), color=colour, lw=1.2)
        if len(together) > 1:
            ax.fill_between(steps, val.min(axis=0), val.max(axis=0), color=colour, alpha=0.18, lw=0)


def beta_bootstrap(result, boot, path):
    fig, ax = plt.subplots(figsize=(8.5, 4), layout="constrained")
    if len(boot):
        ax.hist(boot, bins=40, color="C0", alpha=0.7)
        if result["beta"] is not None:
            ax.axvline(result["beta"], color="C0", lw=2, label=f"β = {result['beta']:.3f}")
        for h in result["hypotheses"]:
            ax.axvline(h["beta"], color="black", ls=REF_STYLE.get(h["beta"], ":"), label=f"{h['beta']} {h['name']}")
        if result["ci95_bootstrap"]:
            ax.axvspan(*result["ci95_bootstrap"], color="C0", alpha=0.1, label="bootstrap 95% CI")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        ax.text(0.5, 0.5, "no bootstrap β (fewer than 3 usable batch sizes)", ha="center", transform=ax.transAxes)
    ax.set(xlabel="β", ylabel="replicates", title=f"Bootstrap of β: {result['bootstrap']['method']}")
    _save(fig, path)


def _errorbar(ax, xs, ys, cis, colour):
    """Points with 95% CIs; an upper end the CI leaves open is an arrow towards the top edge."""
    open_above = False
    for x, y, ci in zip(xs, ys, cis):
        lo = y if not ci or ci[0] is None else ci[0]
        hi = y if not ci or ci[1] is None else ci[1]
        ax.errorbar([x], [y], yerr=[[max(y - lo, 0)], [max(hi - y, 0)]], color=colour, marker="o", capsize=3, ls="none")
        if ci and ci[1] is None:
            open_above = True
            ax.annotate("", xy=(x, 0.95), xycoords=("data", "axes fraction"), xytext=(x, y), textcoords="data",
                        arrowprops=dict(arrowstyle="->", color=colour, lw=1))
    return open_above


def noise_vs_batch(result, path):
    """B_simple (with the loss surface's McCandlish B_noise) and the noise kurtosis against B."""
    g = (result.get("gradient_noise") or {}).get("per_batch") or []
    if not g:
        fig, ax = plt.subplots(figsize=(11, 2), layout="constrained")
        ax.text(0.5, 0.5, "no gradient-noise probes in these runs (train.noise_probes: 0)", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_axis_off()
        _save(fig, path)
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    bs = [r["batch_size"] for r in g]
    pts = [(r["batch_size"], r["b_simple"], r["b_simple_ci95"]) for r in g if r["b_simple"] is not None]
    handles = []
    span = [v for _, y, ci in pts for v in (y, *(ci or ())) if v is not None]
    if pts and _errorbar(left, *zip(*pts), "C0"):
        handles.append(Line2D([], [], color="C0", marker="$\\uparrow$", ls="none", label="CI open above (|G|² ≈ 0)"))
    mc = (result.get("forms") or {}).get(MCCANDLISH)
    if mc and not mc.get("b_noise_unbounded"):
        handles.append(left.axhline(mc["b_noise"], color="C1", ls="--",
                                    label=f"B_noise from lr_opt(B), McCandlish: {mc['b_noise']:.3g}"))
        lo, hi = mc["b_noise_ci95"]
        if lo is not None and hi is not None:
            left.axhspan(lo, hi, color="C1", alpha=0.12)
        span += [v for v in (mc["b_noise"], lo, hi) if v is not None]
    if span:  # room above the highest point for an open-ended arrow
        left.set_ylim(min(span) / 2, max(span) * 5)
    if handles:
        left.legend(handles=handles, fontsize=8, loc="lower right")
    left.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="B_simple = tr(Σ)/|G|²",
             title="Gradient-noise scale at each lr_opt (95% CI)")
    kurt = [(r["batch_size"], r["kurtosis"], r["kurtosis_ci95"]) for r in g if r["kurtosis"] is not None]
    if kurt:
        _errorbar(right, *zip(*kurt), "C2")
        b0, k0 = kurt[0][0], kurt[0][1]
        grid = np.geomspace(min(bs), max(bs), 50)
        right.plot(grid, k0 * b0 / grid, color="grey", ls=":", label="∝ 1/B (i.i.d. samples), through the first point")
        right.legend(fontsize=8, loc="upper right")
    right.axhline(0, color="black", lw=0.6)
    right.set(xscale="log", xlabel="batch size B", ylabel="excess kurtosis of the noise",
              title="Noise tails at the batch size trained (0 = Gaussian)")
    for ax in (left, right):
        batch_axis(ax.xaxis, bs)
    _save(fig, path)


def render_all(result, boot, out: Path, runs=()):
    draw = {
        "lr_opt_vs_batch": lambda path: lr_opt_vs_batch(result, path),
        "loss_vs_lr": lambda path: loss_vs_lr(result, path),
        "loss_heatmap": lambda path: loss_heatmap(result, path),
        "training_curves": lambda path: training_curves(runs, path),
        "beta_bootstrap": lambda path: beta_bootstrap(result, boot, path),
        "noise_vs_batch": lambda path: noise_vs_batch(result, path),
    }
    assert list(draw) == PLOTS, "lrscale.PLOTS and the plot functions disagree"
    for name in PLOTS:
        draw[name](out / f"{name}.png")
    for b in sorted({m["batch_size"] for m in runs}):
        training_curves([m for m in runs if m["batch_size"] == b], out / f"{CURVES_PER_BATCH.format(batch=b)}.png")


def lr_opt_by_horizon(fits: dict, summary: dict, path) -> None:
    """Every horizon's per-B lr_opt (95% CI; hollow: not used) in its colour, and the joint fit
    lr_opt = C·B^β·D^−γ drawn at each horizon; the batch axis ticked at the batch sizes run."""
    model = summary["joint"]
    own = {p["horizon"]: p for p in summary["per_horizon"]}
    panels = []
    for d in sorted(fits):
        label = f"D = {d:,}" + (f": β = {own[d]['beta']:.3f} {interval(own[d]['ci95'], '.3f')}"
                                if own[d]["beta"] is not None else ": no β of its own")
        line = None if model["beta"] is None else (
            lambda bb, d=d: np.exp(model["c"] + model["beta"] * np.log(bb) - model["gamma"] * np.log(d)))
        panels.append((fits[d], label, line))
    title = "Optimal lr vs batch size, one colour per horizon D" + (
        "" if model["beta"] is None else f"\njoint fit: β = {model['beta']:.3f}, γ = {model['gamma']:.3f}")
    _lr_opt_by(panels, title, "no horizon has a located optimum", path)


def lr_opt_by_group(fits: dict, summary: dict, path) -> None:
    """Every group's per-B lr_opt (95% CI; hollow: not used) in its colour, with its line at the
    within-group β where the joint fit has one; the batch axis ticked at the batch sizes run."""
    joint = summary["joint"]
    panels = []
    for p in summary["per_group"]:
        if p["label"] not in fits:
            continue
        label = p["label"] + (f": β = {p['beta']:.3f} {interval(p['ci95'], '.3f')}" if p["beta"] is not None
                              else ": no β of its own")
        c = (joint.get("intercepts") or {}).get(p["label"])
        line = None if c is None else (lambda bb, c=c: np.exp(c + joint["beta"] * np.log(bb)))
        panels.append((fits[p["label"]], label, line))
    title = "Optimal lr vs batch size, one colour per group" + (
        "" if joint["beta"] is None else f"\nlines: β = {joint['beta']:.3f} within groups, one level per group")
    _lr_opt_by(panels, title, "no group has a located optimum", path)


def _lr_opt_by(panels: list, title: str, empty: str, path) -> None:
    """(fit.json, legend label, line lr_opt(B) or None) per colour: per-B optima side by side."""
    fig, ax = plt.subplots(figsize=(7, 5))
    colours = _colours(len(panels))
    batches = sorted({r["batch_size"] for f, _, _ in panels for r in f["per_batch"]})
    limits = _lr_limits([r for f, _, _ in panels for r in f["per_batch"]])
    for k, ((fit, label, line), colour) in enumerate(zip(panels, colours)):
        nudge = 1.04 ** (k - (len(panels) - 1) / 2)  # side by side, not on top of each other
        for r in fit["per_batch"]:
            if r["lr_opt"] is not None:
                _ci_bar(ax, r["batch_size"] * nudge, r, limits, ms=5, color=colour,
                        mfc=colour if r["included"] else "none")
        if line is not None:  # over the batch sizes this colour ran
            own = [r["batch_size"] for r in fit["per_batch"]]
            bb = np.array([b for b in batches if min(own) <= b <= max(own)], float)
            ax.plot(bb, line(bb), color=colour, lw=1.4, label=label)
        else:
            ax.plot([], [], "o", color=colour, label=label)
    ax.set(xscale="log", xlabel="batch size B", ylabel="lr_opt (95% CI; hollow: not used)", title=title)
    if batches:
        batch_axis(ax.xaxis, batches)
    if any(r["lr_opt"] for f, _, _ in panels for r in f["per_batch"]):
        ax.set_yscale("log")
        ax.set_ylim(*limits)
        plain_log_axis(ax.yaxis)
    else:
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center")
    if panels:  # no group fitted: no legend (matplotlib would warn that it has nothing to show)
        ax.legend(fontsize=8)
    _save(fig, path)


def _b_crit_label(t) -> str:
    """A target's legend entry: its loss and B_crit with the 95% CI (open ends said), or why none."""
    head = f"loss {plain(t['target_loss'])}: "
    if t["b_crit"] is None:
        return head + "no B_crit (" + t["reason"] + ")"
    lo, hi = t.get("ci95") or (None, None)
    ci = f" [{'open' if lo is None else plain(lo)}, {'open' if hi is None else plain(hi)}]" if "ci95" in t else ""
    return head + f"B_crit = {plain(t['b_crit'])}{ci}" + (f" ({t['reason']})" if t.get("reason") else "")


def b_crit(summary: dict, path) -> None:
    """The steps each batch size's best run needs to reach each loss target (one colour per target),
    the fitted S_min·(1 + (B_crit/B)^γ) through them, B_crit (dashed) with its 95% CI shaded (an open
    end runs to the axis' edge), and the proxies at the longest horizon in grey: B_simple (dotted) and
    B_noise (dash-dot). The batch axis is ticked at the batch sizes run and reaches a decade past them."""
    crit = summary.get("critical_batch") or {}
    targets = [t for t in crit.get("targets", []) if t.get("steps")]
    fig, ax = plt.subplots(figsize=(7, 5))
    batches = sorted({b for t in targets for b in t["batch_sizes"]})
    if not any(s for t in targets for s in t["steps"]):
        why = crit.get("reason", "no batch size reaches a target") if crit else "no results.csv to read the steps from"
        ax.text(0.5, 0.5, "B_crit not measured:\n" + why,
                transform=ax.transAxes, ha="center", wrap=True)
        ax.set(xlabel="batch size B", ylabel="steps to reach the loss", xticks=[], yticks=[])
        _save(fig, path)
        return
    reach = (min(batches) / 10, max(batches) * 10)  # how far past the batch sizes run a B_crit is drawn
    longest = summary["per_horizon"][-1] if summary.get("per_horizon") else {}
    proxies = [(longest.get("b_simple_median"), ":", "B_simple"), (longest.get("b_noise"), "-.", "B_noise")]
    inside = [v for v in [t["b_crit"] for t in targets] + [v for v, _, _ in proxies]
              if v is not None and reach[0] <= v <= reach[1]]
    left, right = min(batches + inside) / 1.5, max(batches + inside) * 1.5
    for t, colour in zip(targets, _colours(len(targets))):
        pts = [(b, s) for b, s in zip(t["batch_sizes"], t["steps"]) if s]
        ax.plot([b for b, _ in pts], [s for _, s in pts], "o", ms=6, color=colour, label=_b_crit_label(t))
        if t["b_crit"] is None or "knee_exponent" not in t:
            continue
        bb = np.geomspace(min(batches), max(batches), 100)
        ax.plot(bb, t["s_min"] * (1 + (t["b_crit"] / bb) ** t["knee_exponent"]), color=colour, lw=1.4)
        lo, hi = t.get("ci95") or (None, None)
        ax.axvspan(left if lo is None else lo, right if hi is None else hi, color=colour, alpha=0.1, lw=0)
        if left <= t["b_crit"] <= right:
            ax.axvline(t["b_crit"], color=colour, ls="--", lw=1)
    for value, style, name in proxies:
        if value is not None and left <= value <= right:
            ax.axvline(value, color="0.45", ls=style, lw=1.2,
                       label=f"{name} = {plain(value)} (D = {longest['horizon']:,})")
    ax.set(xscale="log", yscale="log", xlim=(left, right), xlabel="batch size B",
           ylabel="steps to reach the loss (its best lr)",
           title="Steps to reach a loss vs batch size\nB_crit: where the steps double over S_min (95% CI shaded)")
    batch_axis(ax.xaxis, batches)
    plain_log_axis(ax.yaxis)
    ax.legend(fontsize=8)
    _save(fig, path)
