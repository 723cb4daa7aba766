"""Grouped fits (issue 25.1): a results CSV whose runs come from several settings (model size N,
tokens D, β₂, …: columns `--by` names) is fitted group by group, each with every output of a plain
fit under its own folder, and then summarised:
  per_group   each group's β with its CI (its own answer), or why it has none (listed, not a crash)
  agreement   Cochran's Q on the groups' βs: one β for all is reported only when they agree
  joint       two stages (`two_stage`): β within groups (one intercept per group, WLS on the per-B
              optima's across-B SEs), then each group's intercept against ln of its numeric columns
              by GLS on the intercepts' covariance, the residual scale estimated between groups (never
              below 1) with t on groups − columns − 1 dof. A group's optima share that group's errors
              (its grid, its loss shape): only the scatter of whole groups says how well lr_opt's
              dependence on N or D is known (bench/horizon_accuracy.py: a CI from the optima as if
              independent missed an NQM-SGD truth's γ in 99% of sweeps; two stages held it in all).
The sentence puts the caveat that undercuts the answer first and names the assumption.
"""

import contextlib
import csv
import io
import math
import re
from pathlib import Path

import numpy as np
from scipy import stats

from ..errors import UserError
from ..fileio import atomic_write_json, atomic_write_text, read_text
from .verdict import answered_beta

LN10 = math.log(10)
AGREE_P = 0.05  # the groups' βs differ when Cochran's Q rejects one β at this p


def optima_of(fit: dict) -> list[tuple]:
    """(B, ln lr_opt, SE of ln lr_opt) of a fit's per-B optima that entered its fits across B."""
    rows = []
    for r in fit["per_batch"]:
        se = r.get("lr_opt_se_across_b_log10")
        if r.get("included") and r.get("lr_opt") and se and math.isfinite(se) and se > 0:
            rows.append((r["batch_size"], math.log(r["lr_opt"]), LN10 * se))
    return rows


def _gls(x, y, cov) -> tuple:
    """GLS of y on x with covariance cov: coefficients, their covariance (unscaled) and the scaled RSS."""
    inv = np.linalg.inv(cov)
    info = np.linalg.inv(x.T @ inv @ x)
    coef = info @ x.T @ inv @ y
    resid = y - x @ coef
    return coef, info, float(resid @ inv @ resid)


def two_stage(optima: dict, covariates: dict) -> dict:
    """β within groups and the groups' intercepts against ln of `covariates` ({name: {group: value}}).
    `optima`: {group: [(B, ln lr_opt, SE)]}. Coefficients on ln covariate are returned as `slopes`."""
    groups = [g for g, rows in optima.items() if rows]
    n = sum(len(optima[g]) for g in groups)
    if len(groups) < 1 or n - len(groups) - 1 < 1 or len({r[0] for g in groups for r in optima[g]}) < 2:
        return {"beta": None, "reason": f"{n} per-B optima in {len(groups)} group(s): too few to fit β within groups"}
    rows = [(gi, *r) for gi, g in enumerate(groups) for r in optima[g]]
    dummies = np.eye(len(groups))[[r[0] for r in rows]]
    x = np.column_stack([np.log([r[1] for r in rows]), dummies])
    y, se = np.array([r[2] for r in rows]), np.array([r[3] for r in rows])
    coef, info, rss = _gls(x, y, np.diag(se**2))
    dof1 = n - x.shape[1]
    scale2 = rss / dof1
    cov = info * scale2
    t1 = float(stats.t.ppf(0.975, dof1))
    beta, beta_se = float(coef[0]), math.sqrt(cov[0, 0])
    out = {"beta": beta, "beta_ci95": [beta - t1 * beta_se, beta + t1 * beta_se], "beta_dof": dof1, "n": n,
           "groups": len(groups), "within_scale": math.sqrt(scale2),
           "intercepts": {str(g): float(c) for g, c in zip(groups, coef[1:])}, "slopes": {}, "c": None,
           "between_scale": None}
    names = [k for k in covariates if len({covariates[k][g] for g in groups}) > 1]  # a constant column says nothing
    dof2 = len(groups) - len(names) - 1
    if not names:
        return out
    if dof2 < 0:
        out["slopes_reason"] = f"{len(groups)} group(s) for {len(names)} covariate(s): too few to fit their slopes"
        return out
    if dof2 < 1:
        out["slopes_reason"] = (f"{len(groups)} groups for {len(names)} covariate(s) and an intercept: no dof left to "
                                "measure how whole groups scatter, so no CI (need one more group)")
    z = np.column_stack([np.ones(len(groups))] + [np.log([covariates[k][g] for g in groups]) for k in names])
    if np.linalg.matrix_rank(z, tol=1e-8 * max(1.0, float(np.abs(z).max()))) < z.shape[1]:
        out["slopes_reason"] = (f"the groups' {', '.join(names)} move together (proportional in log): their "
                                "effects cannot be told apart; group by one of them")
        return out
    c2, info2, rss2 = _gls(z, coef[1:], cov[1:, 1:])
    scale2_between = max(rss2 / dof2, 1.0) if dof2 >= 1 else math.nan
    t2 = float(stats.t.ppf(0.975, dof2)) if dof2 >= 1 else math.nan
    for k, name in enumerate(names, start=1):
        s = math.sqrt(max(info2[k, k], 0.0) * scale2_between) if dof2 >= 1 else math.nan
        out["slopes"][name] = {"value": float(c2[k]), "ci95": [float(c2[k] - t2 * s), float(c2[k] + t2 * s)]
                               if dof2 >= 1 else None, "dof": dof2}
    out["between_scale"] = math.sqrt(scale2_between) if dof2 >= 1 else None
    out["c"] = float(c2[0])
    return out


def _se(p: dict) -> float:
    """A group's β SE from its 95% CI: the half-width over the t quantile of the CI's own dof (a per-B
    fit of 3 batch sizes has t = 12.7; 1.96 would make its SE 6.5x too large and hide a difference)."""
    t = float(stats.t.ppf(0.975, p["dof"])) if p.get("dof") else 1.96
    return (p["ci95"][1] - p["ci95"][0]) / (2 * t)


def agreement(per_group: list) -> dict:
    """Cochran's Q on the groups' βs (SE from each 95% CI and its dof); `differ` when it rejects one
    β at AGREE_P. Groups without a closed CI cannot take part (named)."""
    usable = [p for p in per_group if p["beta"] is not None and p["ci95"] and None not in p["ci95"]]
    left = [p["label"] for p in per_group if p["beta"] is not None and p not in usable]
    if len(usable) < 2:
        return {"q": None, "p_value": None, "differ": None, "groups": len(usable), "open_ci": left}
    b = np.array([p["beta"] for p in usable])
    w = 1 / np.square([_se(p) for p in usable])
    mean = float(np.sum(w * b) / np.sum(w))
    q = float(np.sum(w * (b - mean) ** 2))
    p_value = float(stats.chi2.sf(q, len(usable) - 1))
    return {"q": q, "p_value": p_value, "differ": bool(p_value < AGREE_P), "groups": len(usable), "open_ci": left}


def _numeric(values) -> bool:
    try:
        return all(math.isfinite(float(v)) and float(v) > 0 for v in values)
    except ValueError:
        return False


def split(path, by: list) -> tuple[list, list]:
    """(header, [(group {column: text}, rows)]) of a results CSV, groups in ascending order of their
    values (numerically where a column is numeric); a column not in the CSV is a one-line error."""
    rows = [r for r in csv.reader(read_text(path, "results CSV").splitlines()) if any(c.strip() for c in r)]
    if not rows:
        raise UserError(f"{path}: empty file; expected a header row and one row per run")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in by if c not in header]
    if missing:
        raise UserError(f"{path}: --by column(s) {missing} not in the CSV; expected some of {header}")
    at = [header.index(c) for c in by]
    groups = {}
    for n, r in enumerate(rows[1:], start=2):
        if len(r) < len(header):
            raise UserError(f"{path}: row {n} has {len(r)} fields; expected {len(header)}")
        groups.setdefault(tuple(r[i].strip() for i in at), []).append(r)
    numeric = [_numeric(k[j] for k in groups) for j in range(len(by))]
    order = sorted(groups, key=lambda k: tuple(float(v) if num else v for v, num in zip(k, numeric)))
    return header, [(dict(zip(by, k)), groups[k]) for k in order]


def label(group: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in group.items())


def folder(group: dict) -> str:
    """The group's folder name: its columns and values, characters a path could trip on as _."""
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", "_".join(f"{k}={v}" for k, v in group.items())) or "_"


def fit_groups(results_csv, by: list, cfg: dict, out_dir) -> dict:
    """Each group's rows to <out>/<group>/results.csv and its fit (every output of `lrscale fit`) beside
    them; then the summary (groups.json, groups.md, lr_opt_by_group.png) in out_dir."""
    from . import plots
    from .fit import run_fit

    header, groups = split(results_csv, by)
    if "budget" in header and "budget" not in by:
        budgets = {r[header.index("budget")].strip() for _, rows in groups for r in rows}
        if len(budgets) > 1:
            raise UserError(f"{results_csv}: column 'budget' holds {len(budgets)} horizons; expected 'budget' among "
                            f"the --by columns (e.g. --by {','.join(by)},budget): one fit per horizon")
    out_dir = Path(out_dir)
    per, fits, taken = [], {}, set()
    for group, rows in groups:
        name = folder(group)
        while name in taken:  # two values that differ only in characters made safe: keep both
            name += "_"
        taken.add(name)
        where = out_dir / name
        csv_path = where / "results.csv"
        atomic_write_text(csv_path, _csv([header, *rows]))
        entry = {"group": group, "label": label(group), "dir": str(where), "runs": len(rows)}
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # one line per group below, not each fit's tables
                fit = run_fit(csv_path, cfg, out_dir=where)
        except UserError as e:
            per.append({**entry, "beta": None, "ci95": None, "estimator": None, "n_used": 0, "dof": None,
                        "reason": str(e)})
            print(f"[lrscale fit --by] {entry['label']}: not fitted: {e}")
            continue
        fits[entry["label"]] = fit
        a = fit["answer"]
        beta, ci = answered_beta(fit) or (None, None)  # a β its verdict leaves "not decided" is not listed
        dof = fit["surface"].get("dof") if a["estimator"] == "surface" else fit.get("dof")
        per.append({**entry, "beta": beta, "ci95": ci, "estimator": a["estimator"], "n_used": fit["n_used"], "dof": dof,
                    "reason": None if beta is not None else fit["verdict"].splitlines()[0].removeprefix("Answer: ")})
        print(f"[lrscale fit --by] {entry['label']}: " + (f"β = {beta:.3f} {_ci(ci)}" if beta is not None
              else "no β") + f" ({where}/report.md)")
    summary = summarize(by, per, fits)
    plots.lr_opt_by_group(fits, summary, out_dir / "lr_opt_by_group.png")
    atomic_write_text(out_dir / "groups.md", markdown(summary))
    atomic_write_json(out_dir / "groups.json", summary)
    print(f"[lrscale fit --by] {summary['sentence']}")
    if not fits:
        raise UserError(f"{results_csv}: no group could be fitted ({len(per)} groups by {', '.join(by)}; each one's "
                        f"reason in {out_dir / 'groups.md'}); expected runs at several lrs and batch sizes per group")
    return summary


def _csv(rows: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def summarize(by: list, per: list, fits: dict) -> dict:
    """The groups' table, whether their βs agree, the joint fit and the sentence."""
    numeric = [c for c in by if _numeric(p["group"][c] for p in per if p["label"] in fits)]
    covariates = {c: {p["label"]: float(p["group"][c]) for p in per if p["label"] in fits} for c in numeric}
    joint = two_stage({lab: optima_of(f) for lab, f in fits.items()}, covariates)
    agree = agreement(per)
    summary = {"by": by, "numeric": numeric, "per_group": per, "agreement": agree, "joint": joint}
    summary["sentence"] = sentence(summary)
    return summary


def _ci(ci) -> str:
    return "[" + ", ".join("unbounded" if v is None else f"{v:.3f}" for v in ci) + "]" if ci else "(no CI)"


def sentence(summary: dict) -> str:
    """What the groups say together, no more than their CIs allow; the caveat that undercuts it first."""
    per, agree, joint = summary["per_group"], summary["agreement"], summary["joint"]
    fitted = [p for p in per if p["beta"] is not None]
    first = f"{len(per) - len(fitted)} of {len(per)} groups have no β (listed with why). " if len(fitted) < len(per) else ""
    each = "; ".join(f"{p['label']}: β = {p['beta']:.3f} {_ci(p['ci95'])}" for p in fitted)
    if len(fitted) < 2:
        return first + "Fewer than 2 groups have a β: nothing to compare" + (f" ({each})." if each else ".")
    if agree["differ"] is None:
        return first + (f"Only {agree['groups']} group(s) have a closed CI, so whether the βs agree is not measured: "
                        f"no one β for all; read each group's ({each}).")
    if agree["differ"]:
        return first + (f"The groups' βs differ beyond their CIs (Cochran's Q = {agree['q']:.1f}, p = {agree['p_value']:.2g}): "
                        f"no one β for all; read each group's ({each}).")
    text = first + (f"The groups' βs agree within their CIs (Cochran's Q p = {agree['p_value']:.2g}). Assumes one β for "
                    "every group" + (" and lr_opt ∝ " + "·".join(f"{c}^α_{c}" for c in summary["numeric"])
                                     + " across groups" if summary["numeric"] else ""))
    if joint["beta"] is None:
        return text + f"; no joint fit: {joint['reason']}."
    text += f": β = {joint['beta']:.3f} {_ci(joint['beta_ci95'])} within groups (from their per-B optima"
    unanswered = [p["label"] for p in per if p["beta"] is None and p["n_used"]]  # a "not decided" verdict, or too few B
    own = "has no β of its own" if len(unanswered) == 1 else "have no β of their own"
    text += f", also those of {', '.join(unanswered)}, which {own})" if unanswered else ")"
    for name, s in joint["slopes"].items():
        text += f"; α_{name} = {s['value']:.3f} " + (_ci(s["ci95"]) if s["ci95"] else "(no CI)")
    return text + (f" ({joint['slopes_reason']})" if joint.get("slopes_reason") else "") + "."


def markdown(summary: dict) -> str:
    rows = [f"| {p['label']} | {p['runs']} | " + (f"{p['beta']:.3f} | {_ci(p['ci95'])} | {p['estimator']}"
            if p["beta"] is not None else "— | — | —") + f" | {p['n_used']} | {p['reason'] or ''} |"
            for p in summary["per_group"]]
    return "\n".join(["# lr_opt across groups", "", summary["sentence"], "",
                      "| group | runs | β (its own fit) | 95% CI | estimator | batch sizes used | why no β |",
                      "|---|---|---|---|---|---|---|", *rows, "",
                      "Each group's own fit, report and plots: its folder beside this file.", ""])
