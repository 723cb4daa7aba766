"""`lrscale` command line: train, aggregate, wandb, fit. Bad input -> one line on stderr, exit 2."""

import argparse
import json
import os
import sys

from .errors import UserError


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


def _load_config(args):
    from . import config

    if args.config_json is not None:
        try:
            raw = json.loads(args.config_json)
        except ValueError:
            raise UserError("--config-json: not valid JSON; expected a config mapping") from None
        return config.validate(raw, source="--config-json")
    if args.config is None:
        raise UserError("--config: required (a sweep YAML), or --config-json")
    return config.load(args.config)


def cmd_train(args):
    cfg = _load_config(args)
    slot = None
    if args.device != "cpu":
        from . import gpu_slots

        # Several jobs may share the machine: one slot each. Under SLURM the scheduler binds
        # each job to its own GPU already (and renumbers it 0), so the pool stays out of its way.
        if not os.environ.get("SLURM_JOB_ID") and gpu_slots.visible_devices():
            slot = gpu_slots.acquire()
            gpu_slots.bind_process(slot)  # before torch touches CUDA
    from .train import train  # torch is imported only here

    train(
        cfg, args.batch_size, args.lr, args.seed, args.out, device=args.device,
        checkpoint_dir=args.checkpoint_dir, checkpoint_every_s=args.checkpoint_every_s, threads=args.threads,
        gpu_slot=None if slot is None else f"gpu{slot.device}/slot{slot.index}",
    )


def cmd_aggregate(args):
    from .aggregate import write_results_csv

    write_results_csv(args.metrics, args.out)


def cmd_wandb(args):
    from .wandb_log import log_sweep

    cfg = _load_config(args)
    log_sweep(cfg, args.results, args.metrics, args.out, plots=args.plots)


def cmd_fit(args):
    from .fit import run_fit

    hyps = None
    if args.hypotheses:
        try:
            hyps = [float(h) for h in args.hypotheses.split(",")]
        except ValueError:
            raise UserError(f"--hypotheses: {args.hypotheses!r}; expected comma-separated numbers like 0.5,0.667,1.0")
    run_fit(
        args.results_csv, out_dir=args.out, estimator=args.estimator, hypotheses=hyps,
        bootstrap=args.bootstrap, seed=args.seed, include_edge=args.include_edge, metrics_dir=args.metrics_dir,
    )


def build_parser():
    p = _Parser(prog="lrscale", description="How does the optimal learning rate scale with batch size?")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="one (batch size, lr, seed) job -> metrics.json")
    t.add_argument("--config", help="sweep YAML (its task/model/optimizer/schedule/budget/train sections)")
    t.add_argument("--config-json", help="the same config as a JSON string (what the Snakemake rule passes)")
    t.add_argument("--batch-size", type=_positive_int, required=True)
    t.add_argument("--lr", type=_float, required=True)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, help="metrics.json path (written atomically at the end)")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    t.add_argument("--checkpoint-dir", help="default: .checkpoint next to --out")
    t.add_argument("--checkpoint-every-s", type=_float, default=float(os.environ.get("LRSCALE_CHECKPOINT_EVERY_S", 300)),
                   help="wall seconds between checkpoints (default 300, or $LRSCALE_CHECKPOINT_EVERY_S)")
    t.add_argument("--threads", type=_positive_int, help="torch CPU threads (Snakemake passes {threads})")
    t.set_defaults(func=cmd_train)

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
    w.add_argument("metrics", nargs="+")
    w.set_defaults(func=cmd_wandb)

    f = sub.add_parser("fit", help="locate lr_opt per batch size and fit lr_opt = C * B^beta")
    f.add_argument("results_csv")
    f.add_argument("--out", help="output dir (default: next to the CSV)")
    f.add_argument("--estimator", choices=["parabola", "argmin", "spline"], default="parabola")
    f.add_argument("--hypotheses", help="comma-separated exponents (default 0.5,0.667,1.0)")
    f.add_argument("--bootstrap", type=int, default=1000)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--include-edge", action="store_true", help="keep unbracketed (edge) optima in the fit")
    f.add_argument("--metrics-dir", help="runs dir with metrics.json files (for training_curves.png)")
    f.set_defaults(func=cmd_fit)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"lrscale {args.command}: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # Preempted carries its own exit code
        code = getattr(e, "exit_code", None)
        if code is None:
            raise
        print(f"lrscale {args.command}: {e}", file=sys.stderr)
        sys.exit(code)


if __name__ == "__main__":
    main()
