# Validate the config (same code and one-line messages as the `lrscale` CLI), then the grid
# and the get_* helpers the rules use. Building the DAG never imports torch.
import json
import shlex
import sys
from pathlib import Path

LRSCALE_SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, LRSCALE_SRC)
# Jobs (local, SLURM, conda envs) import the same package from this checkout.
shell.prefix(
    f'export PYTHONPATH={shlex.quote(LRSCALE_SRC)}"${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; '
)

from lrscale import PLOTS
from lrscale import config as lrscale_config
from lrscale.errors import UserError

try:
    _resolved = lrscale_config.validate(
        config, source=" + ".join(map(str, workflow.configfiles)) or "config"
    )
except UserError as e:
    raise WorkflowError(f"invalid config: {e}") from None
config.clear()
config.update(_resolved)

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
# Path patterns of one run, derived from the package's one run-name definition.
RUN = lrscale_config.RUN_NAME  # "B{batch}_LR{lr}"
RUN_METRICS = lrscale_config.RUN_METRICS


wildcard_constraints:
    **lrscale_config.RUN_NAME_REGEX,
    sweep=SWEEP.replace(".", r"\."),
    seed=r"\d+",


def get_metrics_files(wildcards=None):
    """Every training job's metrics.json, in grid order."""
    return [
        f"{RESULTS}/"
        + RUN_METRICS.format(
            batch=p["batch_size"], lr=lrscale_config.lr_name(p["lr"]), seed=p["seed"]
        )
        for p in GRID
    ]


def get_lr(wildcards):
    """The exact lr from the config (the path only carries it to LR_DECIMALS decimals)."""
    return repr(LR_BY_NAME[wildcards.lr])


def get_train_config_json(wildcards):
    """Training-relevant sections only: changing them reruns training, wandb/analysis do not."""
    return json.dumps(lrscale_config.train_config(config), sort_keys=True)


def get_fit_config_json(wildcards):
    """The sections the fit reads: changing wandb does not rerun it."""
    return json.dumps(lrscale_config.fit_config(config), sort_keys=True)


def get_checkpoint_dir(wildcards):
    """Outside Snakemake's outputs, so it survives a failed or preempted job."""
    run = RUN.format(batch=wildcards.batch, lr=wildcards.lr)
    return f"{RESULTS}/checkpoints/{run}/seed{wildcards.seed}"


def get_config_json(wildcards):
    return json.dumps(config, sort_keys=True)


def get_fit_out_dir(wildcards, output):
    return str(Path(output.fit).parent)


def get_final_outputs():
    """Every metrics.json is a target too: deleting one reruns exactly that job (and
    what depends on it), which Snakemake would not do for a missing intermediate."""
    return get_metrics_files() + expand(
        [rules.aggregate.output.csv, rules.fit.output.fit, rules.wandb_log.output.run],
        sweep=SWEEP,
    )


def get_existing_metrics_files(wildcards):
    """Partial analysis: only the runs that finished (asked for explicitly: `snakemake partial`)."""
    found = [f for f in get_metrics_files() if Path(f).exists()]
    if not found:
        raise WorkflowError(
            f"partial analysis: no finished run under {RESULTS}/runs yet"
        )
    return found
