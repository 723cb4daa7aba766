# Validate the config (same code and one-line messages as the `lrscale` CLI), then the grid
# and the get_* helpers the rules use. Building the DAG never imports torch.
import json
import os
import shlex
import sys
import uuid
from pathlib import Path

LRSCALE_SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, LRSCALE_SRC)
# Jobs (local, SLURM, conda envs) import the same package from this checkout.
shell.prefix(
    f'export PYTHONPATH={shlex.quote(LRSCALE_SRC)}"${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; '
)

from lrscale import CURVES_PER_BATCH, PAGES, PLOTS
from lrscale import plans as lrscale_plans
from lrscale import config as lrscale_config
from lrscale.errors import UserError

# Each snakemake invocation gives its jobs an id of its own: Snakemake reruns a whole packed SLURM
# job when one member fails, and a member that finished in this invocation then restores its
# result instead of training again (lrscale.checkpoint). The snakemake that runs a job on a
# node (remote mode) keeps the id of the invocation that submitted it.
if not (workflow.remote_exec and lrscale_config.INVOCATION_ENV in os.environ):
    os.environ[lrscale_config.INVOCATION_ENV] = str(uuid.uuid4())
# a local job is never rerun once finished: it keeps nothing
os.environ[lrscale_config.REMOTE_ENV] = "1" if workflow.remote_exec else "0"


envvars:
    lrscale_config.INVOCATION_ENV,


try:
    _resolved = lrscale_config.validate(
        config, source=" + ".join(map(str, workflow.configfiles)) or "config"
    )
except UserError as e:
    raise WorkflowError(f"invalid config: {e}") from None
config.clear()
config.update(_resolved)
if config["analysis"]["by"]:
    raise WorkflowError(
        "invalid config: key 'analysis.by': a sweep's results.csv has no group columns; expected it "
        "unset here (it is for `lrscale fit --config` on an imported CSV)"
    )

SWEEP = config["sweep"]["name"]
RESULTS = f"results/{SWEEP}"
# The sweep name is a safe path component (schema); a symlinked results/<sweep> could still point
# outside results/ (a symlinked results/ itself is fine: big disks on clusters).
if Path(RESULTS).resolve().parent != Path("results").resolve():
    raise WorkflowError(
        f"invalid results dir: {RESULTS} resolves to {Path(RESULTS).resolve()}, outside results/"
    )
GRID = lrscale_config.grid(config)
LR_BY_NAME = {lrscale_config.lr_name(lr): lr for lr in config["sweep"]["lrs"]}
# Adaptive sweeps: round 1 is GRID, each later round a plan written by `checkpoint plan_round`.
ROUNDS = config["sweep"]["adaptive"]["rounds"]
# budget.values: several horizons, each run at every grid point and fitted on its own ([None]: one).
HORIZONS = lrscale_config.horizons(config)
# Path patterns of one run, derived from the package's one run-name definition; at one horizon of
# several, the config's name is followed by /D{horizon}.
RUN = lrscale_config.RUN_NAME  # "B{batch}_LR{lr}"
RUN_METRICS = lrscale_config.RUN_METRICS
RUN_LOG = lrscale_config.RUN_LOG
RUN_BENCHMARK = lrscale_config.RUN_BENCHMARK
AT_HORIZON = lambda pattern: lrscale_config.with_horizon(pattern, "horizon")
# wsd with several horizons: one stable phase per (B, lr, seed), each horizon's cool-down branched from it.
BRANCHED = lrscale_config.branched(config)


wildcard_constraints:
    **lrscale_config.RUN_NAME_REGEX,
    sweep=SWEEP.replace(".", r"\."),
    seed=r"\d+",
    round=r"\d+",
    horizon=lrscale_config.HORIZON_REGEX,


def metrics_path(point):
    """Where one (batch_size, lr, seed[, horizon]) run writes its metrics.json."""
    b, lr, seed = point["batch_size"], point["lr"], point["seed"]
    return f"{RESULTS}/{lrscale_config.run_metrics(b, lr, seed, point.get('horizon'))}"


def get_horizon_metrics_files(wildcards):
    """One horizon's metrics.json files (its fit's training curves)."""
    return [metrics_path(p) for p in GRID if p.get("horizon") == int(wildcards.horizon)]


def get_plan_file(r):
    """Round r's plan, once checkpoint plan_round has written it (until then the DAG waits)."""
    return checkpoints.plan_round.get(sweep=SWEEP, round=r).output.plan


def read_plan(path):
    """A round's plan; a damaged one stops the workflow with one line naming it."""
    try:
        return lrscale_plans.read_plan(path)
    except UserError as e:
        raise WorkflowError(str(e)) from None


def get_round_points(r):
    """Round r's runs: the grid, or what its plan says."""
    if r == 1:
        return GRID
    return read_plan(get_plan_file(r))["points"]


def get_metrics_files(wildcards=None):
    """Every training job's metrics.json: the grid in grid order, then each later round's."""
    return [metrics_path(p) for r in range(1, ROUNDS + 1) for p in get_round_points(r)]


def get_metrics_before_round(wildcards):
    """What round `wildcards.round` is planned from: every run of the rounds before it."""
    return [
        metrics_path(p)
        for r in range(1, int(wildcards.round))
        for p in get_round_points(r)
    ]


def get_plans_before_round(wildcards):
    return [get_plan_file(r) for r in range(2, int(wildcards.round))]


def get_plans(wildcards=None):
    """Every later round's plan (none for a fixed grid)."""
    return [get_plan_file(r) for r in range(2, ROUNDS + 1)]


def get_lr(wildcards):
    """The exact lr: the config's (the path only carries LR_DECIMALS decimals), else a planned lr,
    which the planner snaps to exactly its name."""
    if wildcards.lr in LR_BY_NAME:
        return repr(LR_BY_NAME[wildcards.lr])
    planned = {
        lrscale_config.lr_name(p["lr"]): p["lr"]
        for plan in map(read_plan, get_existing_plans())
        for p in plan["points"]
        if p["batch_size"] == int(wildcards.batch)
    }
    if wildcards.lr not in planned:
        raise WorkflowError(
            f"lr {wildcards.lr} at batch size {wildcards.batch} is neither in sweep.lrs nor in a round plan"
        )
    return repr(planned[wildcards.lr])


def get_train_config_json(wildcards):
    """Training-relevant sections only, at the job's horizon: changing them reruns training,
    wandb/analysis do not (a horizon's runs keep the hash a one-horizon sweep of it has).
    """
    cfg = lrscale_config.at_horizon(config, wildcards.get("horizon"))
    return json.dumps(lrscale_config.train_config(cfg), sort_keys=True)


def get_fit_config_json(wildcards):
    """The sections the fit reads: changing wandb does not rerun it."""
    return json.dumps(lrscale_config.fit_config(config), sort_keys=True)


def get_checkpoint_dir(wildcards):
    """Outside Snakemake's outputs, so it survives a failed or preempted job."""
    horizon = wildcards.get("horizon")
    run = lrscale_config.with_horizon(RUN, horizon).format(**dict(wildcards.items()))
    return f"{RESULTS}/checkpoints/{run}/seed{wildcards.seed}"


def get_plan_config_json(wildcards):
    """What a plan depends on: the grid and its adaptive settings, training and fit settings."""
    sections = ["sweep", *lrscale_config.TRAIN_SECTIONS, *lrscale_config.FIT_SECTIONS]
    cfg = lrscale_config.without_null(
        {k: config[k] for k in sections}, [("analysis", "by")]
    )
    return json.dumps(cfg, sort_keys=True)


def get_config_json(wildcards):
    """The resolved config (without budget.values: null and analysis.by: null, keys a sweep made
    before them does not have: its fit, pages and W&B run are not redone for a key it does not use).
    """
    cfg = lrscale_config.without_null(
        config, [("budget", "values"), ("analysis", "by")]
    )
    return json.dumps(cfg, sort_keys=True)


def get_fit_out_dir(wildcards, output):
    return str(Path(output.fit).parent)


def get_final_outputs(wildcards=None):
    """Every metrics.json is a target too: deleting one reruns exactly that job (and
    what depends on it), which Snakemake would not do for a missing intermediate."""
    return (
        get_metrics_files()
        + get_analysis_targets()
        + expand(
            [
                rules.aggregate.output.csv,
                rules.wandb_log.output.run,
                rules.config_page.output.page,
            ],
            sweep=SWEEP,
        )
    )


def get_fit_files(wildcards=None):
    """The sweep's fit.json, or one per horizon (analysis/D{horizon}/) when it has several."""
    if HORIZONS == [None]:
        return expand(rules.fit.output.fit, sweep=SWEEP)
    return expand(rules.fit_horizon.output.fit, sweep=SWEEP, horizon=HORIZONS)


def get_horizon_summary(wildcards=None):
    """analysis/horizons.json of a sweep with several horizons (none with one)."""
    return (
        [] if HORIZONS == [None] else expand(rules.horizons.output.summary, sweep=SWEEP)
    )


def get_analysis_targets(wildcards=None):
    """The fits, and with several horizons their summary (analysis/horizons.json)."""
    summary = (
        [] if HORIZONS == [None] else expand(rules.horizons.output.summary, sweep=SWEEP)
    )
    return get_fit_files() + summary


def get_existing_plans(wildcards=None):
    """The later rounds' plans already written (partial analysis never waits for a round)."""
    plans = [f"{RESULTS}/rounds/round{r}.json" for r in range(2, ROUNDS + 1)]
    return [p for p in plans if Path(p).exists()]


def get_existing_metrics_files(wildcards):
    """Partial analysis: only the runs that finished (asked for explicitly: `snakemake partial`)."""
    planned = [read_plan(p)["points"] for p in get_existing_plans()]
    points = GRID + [p for plan in planned for p in plan]
    found = [f for f in map(metrics_path, points) if Path(f).exists()]
    if not found:
        raise WorkflowError(
            f"partial analysis: no finished run under {RESULTS}/runs yet"
        )
    return found


# Snakemake's HTML report (`snakemake --report`): each fit output a reader looks at, in a category
# (numbered: the report sorts them by name) with its caption under workflow/report/.
REPORT = {
    "report": ("1. Verdict", "verdict.rst"),
    "lr_opt_vs_batch": ("2. lr_opt vs B", "lr_opt_vs_batch.rst"),
    "beta_bootstrap": ("2. lr_opt vs B", "beta_bootstrap.rst"),
    "best_per_batch_table": ("2. lr_opt vs B", "best_per_batch_table.rst"),
    "noise_vs_batch": ("2. lr_opt vs B", "noise_vs_batch.rst"),
    "loss_vs_lr": ("3. Loss landscape", "loss_vs_lr.rst"),
    "loss_heatmap": ("3. Loss landscape", "loss_heatmap.rst"),
    "training_curves": ("4. Training curves", "training_curves.rst"),
    "results_table": ("5. Runs", "results_table.rst"),
}
if set(REPORT) != set(PLOTS + PAGES):
    raise WorkflowError(
        f"REPORT in common.smk must name every plot and page: {sorted(PLOTS + PAGES)}"
    )


def get_analysis_outputs(analysis, for_report=True):
    """The fit's plots and pages as named outputs (flagged for the report unless for_report is
    False), plus one training-curves plot per batch size."""
    flag = report if for_report else lambda path, **how: path
    out = {}
    for name in PLOTS + PAGES:
        category, caption = REPORT[name]
        out[name] = flag(
            f"{analysis}/{name}.{'png' if name in PLOTS else 'html'}",
            caption=f"../report/{caption}",
            category=category,
            subcategory="all batch sizes" if name == "training_curves" else None,
        )
    for b in config["sweep"]["batch_sizes"] if for_report else []:
        name = CURVES_PER_BATCH.format(batch=b)
        out[name] = report(
            f"{analysis}/{name}.png",
            caption="../report/training_curves_batch.rst",
            category="4. Training curves",
            subcategory=f"B={b}",
        )
    return out


def get_plot_files(wildcards):
    """The analysis plots the W&B run carries (each horizon's, when there are several)."""
    if HORIZONS == [None]:
        return expand(f"results/{wildcards.sweep}/analysis/{{plot}}.png", plot=PLOTS)
    dirs = [f"analysis/{lrscale_config.HORIZON.format(horizon=h)}" for h in HORIZONS]
    across = expand(
        [rules.horizons.output.plot, rules.horizons.output.b_crit_plot],
        sweep=wildcards.sweep,
    )
    return across + expand(
        f"results/{wildcards.sweep}/{{dir}}/{{plot}}.png", dir=dirs, plot=PLOTS
    )


def get_sweep_train_config_json(wildcards):
    """The training config with every horizon (wsd branches): what the stable phase runs to and
    what its snapshots are checked against."""
    return json.dumps(lrscale_config.train_config(config), sort_keys=True)


def get_stable_dir(wildcards, output):
    return str(Path(output.snapshots[0]).parent)


def get_stable_checkpoint_dir(wildcards):
    """The stable phase's resume state (outside its outputs, as get_checkpoint_dir)."""
    run = RUN.format(batch=wildcards.batch, lr=wildcards.lr)
    return f"{RESULTS}/checkpoints/{run}/stable/seed{wildcards.seed}"
