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
LR_BY_NAME = {f"{lr:.6f}": lr for lr in config["sweep"]["lrs"]}


wildcard_constraints:
    sweep=SWEEP.replace(".", r"\."),
    batch=r"\d+",
    lr=r"\d+\.\d{6}",
    seed=r"\d+",


def get_metrics_files(wildcards=None):
    """Every training job's metrics.json, in grid order."""
    return [
        f"{RESULTS}/runs/{lrscale_config.run_name(p['batch_size'], p['lr'])}/seed{p['seed']}/metrics.json"
        for p in GRID
    ]


def get_lr(wildcards):
    """The exact lr from the config (the path only carries it to 6 decimals)."""
    return repr(LR_BY_NAME[wildcards.lr])


def get_train_config_json(wildcards):
    """Training-relevant sections only: changing them reruns training, wandb/analysis do not."""
    return json.dumps(lrscale_config.train_config(config), sort_keys=True)


def get_checkpoint_dir(wildcards):
    """Outside Snakemake's outputs, so it survives a failed or preempted job."""
    return f"{RESULTS}/checkpoints/B{wildcards.batch}_LR{wildcards.lr}/seed{wildcards.seed}"


def get_config_json(wildcards):
    return json.dumps(config, sort_keys=True)


def get_analysis_args(wildcards):
    a = config["analysis"]
    hyps = ",".join(str(h) for h in a["hypotheses"])
    edge = " --include-edge" if a["include_edge"] else ""
    return f"--estimator {a['estimator']} --hypotheses {hyps} --bootstrap {a['bootstrap']} --seed {a['seed']}{edge}"


def get_fit_out_dir(wildcards, output):
    return str(Path(output.fit).parent)


def get_plots(wildcards=None):
    return [f"{RESULTS}/analysis/{p}.png" for p in PLOTS]


def get_final_outputs():
    """Every metrics.json is a target too: deleting one reruns exactly that job (and
    what depends on it), which Snakemake would not do for a missing intermediate."""
    return get_metrics_files() + [
        f"{RESULTS}/results.csv",
        f"{RESULTS}/analysis/fit.json",
        f"{RESULTS}/wandb_run.json",
    ]


def get_existing_metrics_files(wildcards):
    """Partial analysis: only the runs that finished (asked for explicitly: `snakemake partial`)."""
    found = [f for f in get_metrics_files() if Path(f).exists()]
    if not found:
        raise WorkflowError(
            f"partial analysis: no finished run under {RESULTS}/runs yet"
        )
    return found
