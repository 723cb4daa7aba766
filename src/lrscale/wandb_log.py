"""Replay a finished sweep into ONE W&B run with fixed metric namespaces.

Key layout (users' dashboards depend on it; README "The W&B run"):
  config/batch_size, config/lr, config/experiment_num       at the start of each (B, lr) config
  B{b}_LR{lr:.6f}/{train_loss,val_loss,learning_rate,step}   each eval point (seed mean), plus the
  flat train_loss, val_loss, batch_size, lr, step            in the same call
  B{b}_LR{lr:.6f}_S{seed}/...                                per seed, when the sweep has several
  B{b}_LR{lr:.6f}/D{horizon}/... and config/horizon          each horizon of several (budget.values)
  B{b}_LR{lr:.6f}/{b_simple,noise_kurtosis}                 at the eval points that are noise probes
  summary/B{b}_LR{lr:.6f}_{final_val_loss,final_train_loss,converged,b_simple,noise_kurtosis},
  summary/{final_val_loss,final_train_loss,batch_size,lr}   after each config
  results, plots/<name>, views/<chart>                      at the end (views: `build_views`);
  plots/D{horizon}/<name>, views/D{horizon}/<chart>          each horizon's, of several
  plots/lr_opt_by_horizon, plots/b_crit                     the horizons' summary plots
  horizons/{beta,gamma,beta_changes,beta_D<h>,b_crit_<i>[_ci95_low/high]}  the horizons' summary (horizons.json)
We never pass `step=`: W&B silently drops rows whose step is lower than the last one.
"""

import math
import os
import re
import sys
from pathlib import Path

from . import config as config_mod
from .aggregate import INTEGER_COLUMNS, NOISE_COLUMNS
from .metrics import finite_probes, load_all
from .fileio import atomic_write_json


def warn(msg):
    print(f"[lrscale wandb] {msg}", file=sys.stderr, flush=True)


def _escape(name: str) -> str:
    # '.' nests keys in define_metric; an unescaped B8_LR0.000030/step adds junk keys to every row.
    return name.replace(".", "\\.")


def _mean(values):
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def _num(v):
    return float("nan") if v is None else v


NOISE_KEYS = {k: NOISE_COLUMNS[k] for k in ("b_simple", "noise_kurtosis")}  # W&B key -> probe field


def _probes_at(group) -> dict:
    """step -> {W&B key: seed mean} of the configs' finite noise probes."""
    by_step = {}
    for m in group:
        for p in finite_probes(m):
            by_step.setdefault(p["step"], []).append(p)
    return {step: {k: _mean([p[f] for p in ps]) for k, f in NOISE_KEYS.items()} for step, ps in by_step.items()}


def build_log_calls(cfg, runs) -> tuple[list[str], list[dict]]:
    """(namespaces, the list of `log` payloads in order). Pure: unit-testable without W&B. A sweep with
    several horizons logs each (B, lr) once per horizon, under B…_LR…/D{horizon}."""
    by_config = {}
    for m in runs:
        by_config.setdefault((m["batch_size"], m["lr"], m.get("horizon")), []).append(m)
    multi = len(cfg["sweep"]["seeds"]) > 1 or any(len(g) > 1 for g in by_config.values())
    order = [(b, lr, h) for h in config_mod.horizons(cfg) for b in cfg["sweep"]["batch_sizes"]
             for lr in cfg["sweep"]["lrs"] if (b, lr, h) in by_config]
    # an adaptive sweep's later rounds: their configs follow the grid's (experiment_num goes on)
    order += sorted(set(by_config) - set(order), key=lambda k: (k[2] or 0, k[0], k[1]))
    namespaces, calls = [], []
    for n, (b, lr, h) in enumerate(order, start=1):
        group = sorted(by_config[(b, lr, h)], key=lambda m: m["seed"])
        ns = config_mod.run_name(b, lr, h)
        namespaces.append(ns)
        if multi:
            namespaces += [f"{ns}_S{m['seed']}" for m in group]
        calls.append({"config/batch_size": b, "config/lr": lr, "config/experiment_num": n,
                      **({"config/horizon": h} if h else {})})
        length = max(len(m["curves"]["step"]) for m in group)
        probes = _probes_at(group)
        for i in range(length):
            at = [m for m in group if i < len(m["curves"]["step"])]
            point = {k: _mean([m["curves"][k][i] for m in at]) for k in ("train_loss", "val_loss", "learning_rate")}
            step = at[0]["curves"]["step"][i]
            row = {f"{ns}/{k}": v for k, v in point.items()}
            row[f"{ns}/step"] = step
            if multi:
                for m in at:
                    for k in ("train_loss", "val_loss", "learning_rate", "step"):
                        row[f"{ns}_S{m['seed']}/{k}"] = _num(m["curves"][k][i])
            row.update({f"{ns}/{k}": v for k, v in probes.get(step, {}).items()})
            row.update(train_loss=point["train_loss"], val_loss=point["val_loss"], batch_size=b, lr=lr, step=step)
            calls.append(row)
        final_val = _mean([m["final_val_loss"] for m in group])
        final_train = _mean([m["final_train_loss"] for m in group])
        summary = {
            f"summary/{ns}_final_val_loss": final_val,
            f"summary/{ns}_final_train_loss": final_train,
            f"summary/{ns}_converged": all(m["converged"] for m in group),
            "summary/final_val_loss": final_val,
            "summary/final_train_loss": final_train,
            "summary/batch_size": b,
            "summary/lr": lr,
        }
        if probes:
            summary.update({f"summary/{ns}_{k}": v for k, v in probes[max(probes)].items()})
        if multi:
            for m in group:
                summary[f"summary/{ns}_S{m['seed']}_final_val_loss"] = _num(m["final_val_loss"])
                summary[f"summary/{ns}_S{m['seed']}_final_train_loss"] = _num(m["final_train_loss"])
                summary[f"summary/{ns}_S{m['seed']}_converged"] = m["converged"]
        calls.append(summary)
    return namespaces, calls


def _finite_series(xs, ys):
    keep = [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
    return [x for x, _ in keep], [y for _, y in keep]


def _seed_mean_curve(group, x_key):
    """(x, val loss) of a (B, lr): at each eval point the mean over the seeds that reached it (as the
    `B…/val_loss` rows), its finite points only."""
    longest = max(group, key=lambda m: len(m["curves"]["step"]))["curves"][x_key]
    ys = [_mean([m["curves"]["val_loss"][i] for m in group if i < len(m["curves"]["val_loss"])])
          for i in range(len(longest))]
    return _finite_series(longest, ys)


def build_views(runs) -> dict:
    """The seed study's four hand-built W&B charts, ready in the run (its Phase-2 logging spec):
    name -> ("lines", xs, ys, keys, title, x name) or ("table", columns, rows). Diverged points are
    left out of lines (NaN cannot be drawn) and None in the table. Pure: testable without W&B."""
    groups = {}
    for m in runs:
        groups.setdefault((m["batch_size"], m["lr"]), []).append(m)
    bs, lrs = sorted({b for b, _ in groups}), sorted({lr for _, lr in groups})
    final = {k: _mean([m["final_val_loss"] for m in g]) for k, g in groups.items()}
    views = {}
    for b in bs:  # 1. per batch size, one line per lr
        curves = [(lr, _seed_mean_curve(groups[(b, lr)], "step")) for lr in lrs if (b, lr) in groups]
        views[f"views/B{b}_val_loss_by_lr"] = ("lines", [c[0] for _, c in curves], [c[1] for _, c in curves],
                                               [f"lr={lr:.3g}" for lr, _ in curves], f"B={b}: val loss per lr", "step")
    series = [(lr, _finite_series(bs, [final.get((b, lr)) for b in bs])) for lr in lrs]  # 2. final loss vs B
    views["views/final_val_loss_vs_batch_by_lr"] = (
        "lines", [xy[0] for _, xy in series], [xy[1] for _, xy in series], [f"lr={lr:.3g}" for lr, _ in series],
        "final val loss vs batch size, one line per lr", "batch_size")
    views["views/final_val_loss_heatmap"] = (  # 3. the B x lr table
        "table", ["batch_size"] + [f"lr={lr:.3g}" for lr in lrs],
        [[b] + [v if (v := final.get((b, lr))) is not None and math.isfinite(v) else None for lr in lrs] for b in bs])
    every = [(k, _seed_mean_curve(g, "samples_seen")) for k, g in sorted(groups.items())]  # 4. all curves
    views["views/val_loss_all_by_samples"] = (
        "lines", [c[0] for _, c in every], [c[1] for _, c in every], [config_mod.run_name(*k) for k, _ in every],
        "every config's val loss vs samples seen", "samples_seen")
    return views


def horizon_views(runs) -> dict:
    """build_views of the sweep, or of each horizon under views/D{horizon}/ when it has several."""
    by_horizon = {}
    for m in runs:
        by_horizon.setdefault(m.get("horizon"), []).append(m)
    if list(by_horizon) == [None]:
        return build_views(runs)
    return {key.replace("views/", f"views/{config_mod.HORIZON.format(horizon=h)}/", 1): view
            for h, group in sorted(by_horizon.items(), key=lambda kv: kv[0] or 0)
            for key, view in build_views(group).items()}


def _wandb_views(wandb, views) -> dict:
    out = {}
    for key, (kind, *spec) in views.items():
        if kind == "table":
            out[key] = wandb.Table(columns=spec[0], data=spec[1])
        else:
            xs, ys, keys, title, xname = spec
            out[key] = wandb.plot.line_series(xs=xs, ys=ys, keys=keys, title=title, xname=xname)
    return out


def _init(wandb, cfg, run_dir: Path):
    """wandb.init honouring mode; online failures fall back to offline with one warning."""
    wb = cfg["wandb"]
    kwargs = dict(project=wb["project"], entity=wb["entity"], name=cfg["sweep"]["name"], config=cfg,
                  dir=str(run_dir), reinit="create_new")
    if wb["mode"] == "online":
        os.environ["WANDB_MODE"] = "online"
        try:
            return wandb.init(settings=wandb.Settings(init_timeout=wb["init_timeout_s"]), **kwargs), "online"
        except Exception as e:  # no key, no network, bad key: keep the results, go offline
            warn(f"online init failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); falling back to offline")
            wandb.teardown()  # forget the online settings the failed attempt cached
    # Offline must come from the environment: mode="offline" alone still tries a telemetry upload.
    os.environ["WANDB_MODE"] = "offline"
    return wandb.init(settings=wandb.Settings(mode="offline"), **kwargs), "offline"


def results_table(wandb, results_csv):
    """results.csv as a W&B table whose numeric columns are numbers (sortable and plottable in the
    UI; a csv reader gives strings), True/False as booleans, empty cells None (a gap in an integer
    column keeps it integer: diverged_at_step 12, not 12.0)."""
    import pandas as pd

    df = pd.read_csv(results_csv, dtype={c: "Int64" for c in INTEGER_COLUMNS})
    cells = df.astype(object).where(df.notna(), None)
    return wandb.Table(columns=[str(c) for c in df.columns], data=cells.values.tolist())


def horizon_keys(summary: dict) -> dict:
    """The horizons' summary (analysis/horizons.json) as flat W&B keys under horizons/."""
    j = summary["joint"]
    out = {f"horizons/beta_D{p['horizon']}": _num(p["beta"]) for p in summary["per_horizon"]}
    if j["beta"] is not None:
        out.update({"horizons/beta": j["beta"], "horizons/gamma": j["gamma"], "horizons/beta_changes": j["beta_changes"],
                    **{f"horizons/{k}_ci95_{end}": _num((j[f"{k}_ci95"] or (None, None))[i]) for k in ("beta", "gamma")
                       for i, end in enumerate(("low", "high"))}})
    for i, t in enumerate((summary.get("critical_batch") or {}).get("targets", []), start=1):
        out[f"horizons/b_crit_{i}"] = _num(t["b_crit"])
        out[f"horizons/b_crit_{i}_target_loss"] = t["target_loss"]
        out.update({f"horizons/b_crit_{i}_ci95_{end}": _num((t.get("ci95") or (None, None))[k])
                    for k, end in enumerate(("low", "high"))})
    return out


def log_sweep(cfg, results_csv, metrics_paths, out, plots=(), horizons=None) -> dict:
    runs = load_all(metrics_paths)
    out = Path(out)
    if cfg["wandb"]["mode"] == "disabled":
        facts = {"mode": "disabled", "runs": len(runs)}
        atomic_write_json(out, facts)
        return facts
    namespaces, calls = build_log_calls(cfg, runs)
    run_dir = out.parent / "wandb"
    run_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    run, mode = _init(wandb, cfg, run_dir)
    for ns in namespaces:
        run.define_metric(f"{_escape(ns)}/*", step_metric=f"{_escape(ns)}/step")
    for payload in calls:
        run.log(payload)
    end = {"results": results_table(wandb, results_csv), **_wandb_views(wandb, horizon_views(runs))}
    for p in map(Path, plots):
        if p.is_file():  # a horizon's plots sit in analysis/D{horizon}/
            at = f"{p.parent.name}/" if re.fullmatch(config_mod.HORIZON.format(horizon=config_mod.HORIZON_REGEX), p.parent.name) else ""
            end[f"plots/{at}{p.stem}"] = wandb.Image(str(p))
    if horizons is not None:  # several horizons: how lr_opt moves with D (analysis/horizons.json, read)
        end.update(horizon_keys(horizons))
    run.log(end)
    run_id, run_path = run.id, Path(run.dir).parent
    run.finish()
    facts = {
        "mode": mode, "project": cfg["wandb"]["project"], "name": cfg["sweep"]["name"], "run_id": run_id,
        "run_dir": str(run_path), "log_calls": len(calls) + 1, "configs": sum(1 for c in calls if "config/lr" in c),
    }
    if mode == "offline":
        files = sorted(run_path.glob("run-*.wandb"))
        facts["run_file"] = str(files[0]) if files else None
        facts["sync_command"] = f"wandb sync {run_path}"
        if cfg["wandb"]["mode"] == "online":
            warn(f"upload later with: wandb sync {run_path}")
    atomic_write_json(out, facts)  # only a finished run is ever reported as the sweep's run
    print(f"[lrscale wandb] {mode} run {run_id}: {facts['configs']} configs, {len(calls) + 1} log calls")
    return facts
