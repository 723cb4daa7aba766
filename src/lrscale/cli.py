"""`lrscale` command line: train, stable, aggregate, wandb, plan, fit, config-page, status. Bad input -> one line
on stderr, exit 2 (`main(argv)` runs one command in this process: the tests call it directly)."""

import argparse
import json
import os
import sys

from .errors import Preempted, UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's default prints the usage too)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _float(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _positive_float(text):
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _load_config(args, required=True):
    """--config FILE or --config-json JSON, validated with defaults filled; else the defaults."""
    from . import config

    if args.config_json is not None:
        try:
            raw = json.loads(args.config_json)
        except ValueError:
            raise UserError("--config-json: not valid JSON; expected a config mapping") from None
        return config.validate(raw, source="--config-json")
    if args.config is not None:
        return config.load(args.config)
    if required:
        raise UserError("--config: required (a sweep YAML), or --config-json")
    return config.defaults()


def _gpu_slot(device: str):
    """This job's GPU slot (held until the process exits), or None."""
    if device == "cpu":
        return None
    from . import gpu_slots

    # Several jobs may share the machine: one slot each. Under SLURM the scheduler binds
    # each job to its own GPU already (and renumbers it 0), so the pool stays out of its way.
    if os.environ.get("SLURM_JOB_ID") or not gpu_slots.visible_devices():
        return None
    slot = gpu_slots.acquire()
    gpu_slots.bind_process(slot)  # before torch is imported (it reads CUDA_VISIBLE_DEVICES)
    return slot


def cmd_train(args):
    from . import config

    cfg = _load_config(args)
    if args.branch_from is not None and args.horizon not in config.horizons(cfg):
        raise UserError(f"--horizon: {args.horizon}; --branch-from needs one of the config's budget.values "
                        f"{config.horizons(cfg)}")
    slot = _gpu_slot(args.device)
    from . import checkpoint, faults  # torch from here on
    from .config import run_name
    from .train import train

    start_at = None
    if args.branch_from is not None:
        from functools import partial

        from . import branches

        identity = branches.stable_identity(cfg, args.batch_size, args.lr, args.seed)
        start_at = partial(branches.start_from, path=args.branch_from, identity=identity, horizon=args.horizon)
    # Test-only crash hooks (never set in normal use) fire before anything is set up.
    faults.before_training(run_name(args.batch_size, args.lr, args.horizon),
                           args.checkpoint_dir or checkpoint.default_dir(args.out))

    train(
        cfg, args.batch_size, args.lr, args.seed, args.out, device=args.device,
        checkpoint_dir=args.checkpoint_dir, checkpoint_every_s=args.checkpoint_every_s, threads=args.threads,
        gpu_slot=None if slot is None else f"gpu{slot.device}/slot{slot.index}", horizon=args.horizon,
        start_at=start_at,
    )


def cmd_stable(args):
    from . import config

    cfg = _load_config(args)
    if not config.branched(cfg):
        raise UserError("--config: the stable phase is shared by several horizons of a wsd schedule; expected "
                        "schedule.name wsd and budget.values with at least two horizons")
    slot = _gpu_slot(args.device)
    from . import faults
    from .branches import train_stable

    faults.before_training(f"{config.run_name(args.batch_size, args.lr)}/stable",
                           args.checkpoint_dir or os.path.join(args.out_dir, ".checkpoint"))
    train_stable(cfg, args.batch_size, args.lr, args.seed, args.out_dir, device=args.device,
                 checkpoint_dir=args.checkpoint_dir, checkpoint_every_s=args.checkpoint_every_s, threads=args.threads)
    return slot  # held (a flock) until the process exits


def cmd_aggregate(args):
    from .aggregate import write_results_csv

    write_results_csv(args.metrics, args.out)


def cmd_wandb(args):
    from . import config
    from .wandb_log import log_sweep

    cfg = _load_config(args)
    horizons = args.horizons
    if horizons is None and len(config.horizons(cfg)) > 1:  # the rule's command stays as it was: found beside results.csv
        found = os.path.join(os.path.dirname(args.results), "analysis", "horizons.json")
        horizons = found if os.path.isfile(found) else None
    if horizons is not None:
        try:
            horizons = json.loads(open(horizons, encoding="utf-8").read())
            horizons["joint"], horizons["per_horizon"]  # noqa: B018  (the keys the W&B run reads)
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{args.horizons or 'analysis/horizons.json'}: not a readable horizons.json; expected "
                            "`lrscale horizons`'s output") from None
    log_sweep(cfg, args.results, args.metrics, args.out, plots=args.plots, horizons=horizons)


def cmd_plan(args):
    from .adaptive import write_plan

    write_plan(_load_config(args), args.round, args.metrics, args.plans, args.out)


def _status_config(args):
    """The sweep's config: --config FILE, or the config/*.yaml whose sweep.name is --sweep NAME, or
    config/config.yaml (the Snakefile's default), all relative to --directory."""
    from pathlib import Path

    from . import config

    base = Path(args.directory)
    if args.config:
        cfg = config.load(base / args.config if not Path(args.config).is_absolute() else args.config)
        if args.sweep and cfg["sweep"]["name"] != args.sweep:
            raise UserError(f"--sweep {args.sweep}: {args.config} is sweep {cfg['sweep']['name']!r}; expected one of them")
        return cfg
    if not args.sweep:
        return config.load(base / "config/config.yaml")
    for path in sorted((base / "config").glob("*.yaml")):
        try:
            cfg = config.load(path)
        except UserError:
            continue  # another file under config/ that is not a sweep config
        if cfg["sweep"]["name"] == args.sweep:
            return cfg
    raise UserError(f"--sweep {args.sweep}: no {base / 'config'}/*.yaml has sweep.name {args.sweep!r}; "
                    "expected --config FILE for a config kept elsewhere")


def cmd_status(args):
    import time
    from pathlib import Path

    from . import status

    cfg = _status_config(args)
    root = Path(args.directory) / "results" / cfg["sweep"]["name"]
    while True:
        s = status.collect(cfg, root)
        tty = sys.stdout.isatty()
        if args.json:  # watching: one document per line (JSON Lines), so a script can read the stream
            text = json.dumps(s, indent=None if args.watch else 1)
        else:
            text = status.render(s, colour=tty)
        if args.watch and tty and not args.json:
            text = "\x1b[H\x1b[2J" + text  # redraw in place
        print(text + ("" if args.json or tty or not args.watch else "\n"), flush=True)
        if not args.watch or not (s["totals"]["running"] + s["totals"]["pending"]):
            return
        time.sleep(args.watch)


def cmd_config_page(args):
    from .analysis.report import write_config_page

    write_config_page(_load_config(args), args.out)


def _hypotheses(text):
    try:
        return [float(h) for h in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}; expected comma-separated numbers like 0.5,0.667,1.0") from None


def _columns(text):
    names = [c.strip() for c in text.split(",")]
    if not all(names) or len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"{text!r}; expected distinct comma-separated column names like params,beta2")
    return names


def _column_map(text):
    pairs = [p.split("=", 1) for p in text.split(",")]
    allowed = {"batch_size", "lr", "final_val_loss", "seed"}
    if not all(len(p) == 2 and p[0].strip() in allowed and p[1].strip() for p in pairs):
        raise argparse.ArgumentTypeError(f"{text!r}; expected OURS=THEIRS pairs with OURS in {sorted(allowed)}, "
                                         "e.g. batch_size=bs,lr=lr,final_val_loss=loss")
    return {k.strip(): v.strip() for k, v in pairs}


def cmd_import(args):
    from . import importers

    if args.source == "porian":
        if args.columns or args.keep:
            raise UserError("lrscale import porian: --columns and --keep are for `import table`; expected neither")
        table = importers.import_porian(args.path)
    else:
        missing = sorted({"batch_size", "lr", "final_val_loss"} - set(args.columns))
        if missing:
            raise UserError(f"lrscale import table: --columns lacks {missing}; expected e.g. "
                            "batch_size=bs,lr=lr,final_val_loss=loss")
        table = importers.import_table(args.path, args.columns, args.keep)
    out = importers.write(table, args.out)
    groups = [c for c in table.columns if c not in importers.OUT_COLUMNS]
    print(f"[lrscale import] {len(table)} runs ({int(table['diverged'].sum())} diverged or without a final loss) -> "
          f"{out}" + (f"; group columns: {', '.join(groups)} (lrscale fit {out} --by COL[,COL])" if groups else ""))


def cmd_fit(args):
    from . import config
    from .analysis.fit import run_fit

    cfg = _load_config(args, required=False)
    flags = {"estimator": args.estimator, "hypotheses": args.hypotheses, "bootstrap": args.bootstrap,
             "seed": args.seed, "include_edge": args.include_edge}
    given = {k: v for k, v in flags.items() if v is not None}
    if given:  # flags override the config's analysis section, checked by the same schema
        cfg["analysis"].update(given)
        cfg = config.validate(cfg, source="command line")
    by = args.by or cfg["analysis"]["by"]
    if not by:
        run_fit(args.results_csv, cfg, out_dir=args.out, metrics=args.metrics, plans=args.plans, horizon=args.horizon)
        return
    from pathlib import Path

    from .analysis.groups import fit_groups

    if args.horizon is not None or args.metrics or args.plans:
        raise UserError("lrscale fit --by: --horizon, --metrics and --plans fit one sweep; expected none of them "
                        "(group by 'budget' to fit each horizon)")
    fit_groups(args.results_csv, by, cfg, Path(args.out) if args.out else Path(args.results_csv).parent / "analysis")


def _job_args(p, checkpoint_default: str) -> None:
    """The flags a training job (train, stable) takes."""
    p.add_argument("--config", help="sweep YAML (its task/model/optimizer/schedule/budget/train sections)")
    p.add_argument("--config-json", help="the same config as a JSON string (what the Snakemake rule passes)")
    p.add_argument("--batch-size", type=_positive_int, required=True)
    p.add_argument("--lr", type=_float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--checkpoint-dir", help=f"default: {checkpoint_default}")
    p.add_argument("--checkpoint-every-s", type=_float, default=float(os.environ.get("LRSCALE_CHECKPOINT_EVERY_S", 300)),
                   help="wall seconds between checkpoints (default 300, or $LRSCALE_CHECKPOINT_EVERY_S)")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads (Snakemake passes {threads})")


def _add_training(sub) -> None:
    t = sub.add_parser("train", help="one (batch size, lr, seed) job -> metrics.json")
    _job_args(t, ".checkpoint next to --out")
    t.add_argument("--out", required=True, help="metrics.json path (written atomically at the end)")
    t.add_argument("--horizon", type=_positive_int,
                   help="one of the sweep's budget.values: the run's budget, and its name's /D<horizon>")
    t.add_argument("--branch-from", metavar="SNAPSHOT",
                   help="wsd with several horizons: start from the stable phase's snapshot (lrscale stable) at this "
                        "horizon's cool-down")
    t.set_defaults(func=cmd_train)
    sp = sub.add_parser("stable", help="wsd with several horizons: one (B, lr, seed)'s shared warmup and stable "
                        "phase -> a snapshot per horizon (D<horizon>.pt) where its cool-down starts")
    _job_args(sp, ".checkpoint in --out-dir")
    sp.add_argument("--out-dir", required=True, help="where the snapshots go (each written atomically)")
    sp.set_defaults(func=cmd_stable)


def _add_import(sub) -> None:
    im = sub.add_parser("import", help="a published sweep's table -> a results CSV for lrscale fit",
                        description="porian: Porian et al. 2024's experiment_results.pickle.xz "
                        "(formll/resolving-scaling-law-discrepancies): the rows of their lr x batch size x beta2 sweep, "
                        "each run's FINAL val/loss (the last logged value, as their own sweep analysis; not a smoothed "
                        "training loss), batch_size = bs (sequences), and the group columns params (N from width and "
                        "depth), beta2, width, depth (fit with --by params,beta2: their sweep varies beta2 within a model size). table: any pickle or CSV with --columns. "
                        "A pickle runs code when it is read: import only files you trust.")
    im.add_argument("source", choices=["porian", "table"])
    im.add_argument("path", help="the pickle (.pkl/.pickle, optionally .xz/.gz/.bz2) or CSV")
    im.add_argument("--out", required=True, help="the results CSV to write (atomically)")
    im.add_argument("--columns", type=_column_map, default={}, metavar="OURS=THEIRS[,...]",
                    help="table: where batch_size, lr and final_val_loss (and seed: default 0) are, e.g. "
                    "batch_size=bs,lr=lr,final_val_loss=loss")
    im.add_argument("--keep", type=_columns, default=[], metavar="COL[,COL]", help="table: columns to carry along "
                    "(group columns for lrscale fit --by)")
    im.set_defaults(func=cmd_import)


def cmd_horizons(args):
    from .analysis.horizons import run_summary

    run_summary(args.fits, args.out, args.results)


def build_parser():
    p = _Parser(prog="lrscale", description="How does the optimal learning rate scale with batch size?")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    _add_training(sub)

    a = sub.add_parser("aggregate", help="metrics.json files -> results.csv")
    a.add_argument("metrics", nargs="+")
    a.add_argument("--out", required=True)
    a.set_defaults(func=cmd_aggregate)

    w = sub.add_parser("wandb", help="replay a finished sweep into ONE W&B run")
    w.add_argument("--config", help="sweep YAML")
    w.add_argument("--config-json", help="the resolved config as a JSON string (what the Snakemake rule passes)")
    w.add_argument("--results", required=True, help="results.csv")
    w.add_argument("--out", required=True, help="where to write the run's facts (JSON)")
    w.add_argument("--plots", nargs="*", default=[])
    w.add_argument("--horizons", help="a sweep with several horizons: its horizons.json (default: analysis/horizons.json "
                   "beside --results)")
    w.add_argument("metrics", nargs="+")
    w.set_defaults(func=cmd_wandb)

    pl = sub.add_parser("plan", help="adaptive sweep: plan round R from every run of the rounds before it")
    pl.add_argument("--config", help="sweep YAML")
    pl.add_argument("--config-json", help="the resolved config as a JSON string (what the Snakemake rule passes)")
    pl.add_argument("--round", type=_positive_int, required=True, help="the round to plan (>= 2)")
    pl.add_argument("--out", required=True, help="the plan JSON (written atomically)")
    pl.add_argument("--metrics", nargs="+", required=True, metavar="METRICS_JSON", help="every run of rounds < R")
    pl.add_argument("--plans", nargs="*", default=[], metavar="PLAN_JSON", help="the plans of rounds 2..R-1")
    pl.set_defaults(func=cmd_plan)

    f = sub.add_parser("fit", help="locate lr_opt per batch size and fit lr_opt = C * B^beta")
    f.add_argument("results_csv")
    f.add_argument("--config", help="sweep YAML: its analysis section and train.final_window (default: the schema defaults)")
    f.add_argument("--config-json", help="the same config as a JSON string (what the Snakemake rule passes)")
    f.add_argument("--out", help="output dir (default: next to the CSV)")
    f.add_argument("--horizon", type=_positive_int,
                   help="fit the runs of this budget only (column 'budget'): needed when the CSV holds several")
    f.add_argument("--by", type=_columns, metavar="COL[,COL]",
                   help="fit each group of rows sharing these columns' values on its own (one folder each under "
                   "--out) and summarise the groups (groups.json, groups.md, lr_opt_by_group.png); overrides analysis.by")
    f.add_argument("--estimator", choices=["parabola", "argmin", "spline"], help="overrides analysis.estimator")
    f.add_argument("--hypotheses", type=_hypotheses, help="comma-separated exponents; overrides analysis.hypotheses")
    f.add_argument("--bootstrap", type=int, help="resamples; overrides analysis.bootstrap")
    f.add_argument("--seed", type=int, help="bootstrap seed; overrides analysis.seed")
    f.add_argument("--include-edge", action="store_const", const=True,
                   help="keep edge and clipped optima in the fit; overrides analysis.include_edge")
    f.add_argument("--metrics", nargs="+", default=[], metavar="METRICS_JSON",
                   help="the sweep's metrics.json files (validated; drawn in training_curves.png)")
    f.add_argument("--plans", nargs="*", default=[], metavar="PLAN_JSON",
                   help="an adaptive sweep's round plans (which round each run came from)")
    f.set_defaults(func=cmd_fit)

    cp = sub.add_parser("config-page", help="the resolved config as an HTML page (for snakemake --report)")
    cp.add_argument("--config", help="sweep YAML")
    cp.add_argument("--config-json", help="the resolved config as a JSON string (what the Snakemake rule passes)")
    cp.add_argument("--out", required=True, help="the page (written atomically)")
    cp.set_defaults(func=cmd_config_page)

    _add_import(sub)

    hz = sub.add_parser("horizons", help="several horizons' fits -> how lr_opt moves with the horizon D")
    hz.add_argument("fits", nargs="+", metavar="FIT_JSON", help="each horizon's fit.json (lrscale fit --horizon)")
    hz.add_argument("--out", required=True, help="dir for horizons.json, horizons.md, lr_opt_by_horizon.png, b_crit.png")
    hz.add_argument("--results", help="the sweep's results.csv: the critical batch size from the steps to reach a loss")
    hz.set_defaults(func=cmd_horizons)

    st = sub.add_parser("status", help="the sweep's grid: done, running (ETA), failed, diverged, pending")
    st.add_argument("--config", help="sweep YAML (default: config/config.yaml)")
    st.add_argument("--sweep", help="sweep name: its config is the config/*.yaml that names it")
    st.add_argument("--directory", default=".", help="the folder holding config/ and results/ (default: .)")
    st.add_argument("--watch", type=_positive_float, metavar="S", help="redraw every S seconds until nothing is left")
    st.add_argument("--json", action="store_true", help="the same as JSON, for scripts")
    st.set_defaults(func=cmd_status)
    return p


def _exit_now() -> None:
    """Leave without the interpreter's teardown: with torch loaded it takes about 1 s per job on a
    CPU (bench/README.md, sweep speed), paid by every job of a sweep. metrics.json is written and
    renamed, the checkpoint cleaned, the GPU slot is a flock the kernel drops: only stdio is left."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
        if args.command == "train" and argv is None:  # a process of its own, not a caller's function
            _exit_now()
    except UserError as e:
        print(f"lrscale {args.command}: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except Preempted as e:
        print(f"lrscale {args.command}: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # `lrscale status | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
