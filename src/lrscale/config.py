"""Sweep config: load, validate against the package's schemas/config.schema.yaml, fill defaults.

Shared by the Snakemake DAG build (workflow/rules/common.smk) and the CLI, so both reject the
same configs with the same one-line messages. The schemas ship inside the package (package data),
so an installed lrscale validates a config without this checkout. Never imports torch.
"""

import copy
import hashlib
import json
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from .errors import UserError, schema_message
from .fileio import read_text

SCHEMAS = "schemas"  # package data: lrscale/schemas/{config,metrics}.schema.yaml, the one copy
# Sections a training job depends on: changing any of them reruns the training jobs;
# changing wandb/analysis does not.
TRAIN_SECTIONS = ("task", "model", "optimizer", "schedule", "budget", "train")
FIT_SECTIONS = ("analysis", "train")


def load_schema(name: str) -> dict:
    """One of the package's schemas (config.schema.yaml, metrics.schema.yaml, fit.schema.yaml), parsed."""
    return yaml.safe_load(resources.files(__package__).joinpath(SCHEMAS, name).read_text(encoding="utf-8"))


def _with_defaults(validator_class):
    """jsonschema validator that fills `default` values in as it validates."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


# The ONE definition of a run's name: W&B namespace, results row, path component, Snakemake
# wildcards ({batch}, {lr}) and the metrics schema's pattern are all derived from these.
LR_DECIMALS = 6  # lrs in names are fixed-point: lrs that agree to this many decimals collide
RUN_NAME = "B{batch}_LR{lr}"
RUN_NAME_REGEX = {"batch": r"\d+", "lr": rf"\d+\.\d{{{LR_DECIMALS}}}"}  # one per field of RUN_NAME
RUN_DIR = "runs/" + RUN_NAME + "/seed{seed}/"  # one run's directory, under results/<sweep>/
RUN_METRICS = RUN_DIR + "metrics.json"  # its metrics: the job's one result, written at its end
PROGRESS_FILE = "progress.json"  # the job's progress as it runs, next to its metrics.json (progress_path)
RUN_PROGRESS = RUN_DIR + PROGRESS_FILE  # lrscale.train writes it, `lrscale status` reads it
# the id of the snakemake invocation a job runs in, set for its jobs by workflow/rules/common.smk
# (lrscale.checkpoint: a packed SLURM job's finished member keeps its result for that invocation)
INVOCATION_ENV = "LRSCALE_INVOCATION"
REMOTE_ENV = "LRSCALE_REMOTE_JOB"  # "1" for jobs a remote-mode snakemake runs (on a SLURM node), else "0"
RUN_LOG = "logs/train/" + RUN_NAME + "_seed{seed}.log"  # its training job's log, under results/<sweep>/
RUN_BENCHMARK = "benchmarks/train/" + RUN_NAME + "_seed{seed}.tsv"  # Snakemake's benchmark of that job
# A sweep with several horizons (budget.values) names each run's horizon after its config's name:
# B8_LR0.010000/D65536 in W&B, results.csv and paths (runs/B8_LR0.010000/D65536/seed0/...). A sweep
# with one horizon names everything as it always has.
HORIZON = "D{horizon}"
HORIZON_REGEX = r"\d+"
# wsd with several horizons: each (B, lr, seed)'s shared stable phase, its snapshots (one per horizon,
# lrscale.branches.SNAPSHOT), log and benchmark, under results/<sweep>/.
STABLE_DIR = "runs/" + RUN_NAME + "/stable/seed{seed}/"
SNAPSHOT = HORIZON + ".pt"  # in STABLE_DIR: the state where that horizon's cool-down starts
STABLE_LOG = "logs/train/" + RUN_NAME + "/stable_seed{seed}.log"
STABLE_BENCHMARK = "benchmarks/train/" + RUN_NAME + "/stable_seed{seed}.tsv"


def lr_name(lr: float) -> str:
    """The lr as it appears in run names and paths."""
    return f"{lr:.{LR_DECIMALS}f}"


def run_name(batch_size: int, lr: float, horizon: int | None = None) -> str:
    """The name of one (batch size, lr) config, at one horizon of several: W&B namespace, results row,
    path component."""
    return with_horizon(RUN_NAME, horizon).format(batch=batch_size, lr=lr_name(lr), horizon=horizon)


def with_horizon(pattern: str, horizon) -> str:
    """A run pattern (RUN_NAME, RUN_METRICS, ...) with the horizon after the config's name, or as it is
    (horizon None: a one-horizon sweep)."""
    return pattern if horizon is None else pattern.replace(RUN_NAME, f"{RUN_NAME}/{HORIZON}")


def run_metrics(batch_size: int, lr: float, seed: int, horizon: int | None = None) -> str:
    """Where one run writes its metrics.json, under results/<sweep>/."""
    return run_path(RUN_METRICS, batch_size, lr, seed, horizon)


def run_path(pattern: str, batch_size: int, lr: float, seed: int, horizon: int | None = None) -> str:
    """RUN_METRICS / RUN_PROGRESS / RUN_LOG / RUN_BENCHMARK of one run, under results/<sweep>/."""
    return with_horizon(pattern, horizon).format(batch=batch_size, lr=lr_name(lr), seed=seed, horizon=horizon)


def progress_path(metrics_path) -> Path:
    """Where the job that writes `metrics_path` keeps its progress file: beside it (RUN_PROGRESS)."""
    return Path(metrics_path).with_name(PROGRESS_FILE)


def run_name_pattern() -> str:
    """A regex that matches exactly the names run_name can produce."""
    horizon = "/" + HORIZON.format(horizon=HORIZON_REGEX)
    return "^" + RUN_NAME.replace(".", r"\.").format(**RUN_NAME_REGEX) + f"({horizon})?$"


def _leaves(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{prefix}{k}.")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), obj


def validate(config: dict, source="config") -> dict:
    """Return a validated copy of `config` with every default filled, or raise UserError."""
    if not isinstance(config, dict):
        raise UserError(f"{source}: expected a YAML mapping at the top level, got {type(config).__name__}")
    cfg = copy.deepcopy(config)
    given_budget = cfg.get("budget") if isinstance(cfg.get("budget"), dict) else {}
    values, value = given_budget.get("values"), given_budget.get("value")
    ints = isinstance(values, list) and values and all(type(v) is int for v in values)
    if ints and value is not None and value != max(values):
        raise UserError(f"{source}: key 'budget.values': given with budget.value {value!r}; expected one of them "
                        "(value: one horizon, values: several)")
    errors = sorted(_Validator(load_schema("config.schema.yaml")).iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        raise UserError(schema_message(source, errors[0]))
    for key, value in _leaves(cfg):
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{source}: key '{key}': {value!r}; expected a finite number")
    sweep = cfg["sweep"]
    for key in ("batch_sizes", "seeds"):
        dup = sorted({v for v in sweep[key] if sweep[key].count(v) > 1})
        if dup:
            raise UserError(f"{source}: key 'sweep.{key}': duplicate values {dup}; expected unique values")
    _check_lr_names(sweep["lrs"], source)
    grid_runs = len(sweep["batch_sizes"]) * len(sweep["lrs"]) * len(sweep["seeds"])
    max_runs = sweep["adaptive"]["max_runs"]
    if max_runs is not None and max_runs < grid_runs:
        raise UserError(f"{source}: key 'sweep.adaptive.max_runs': {max_runs} is below the grid's {grid_runs} runs; "
                        "expected at least the grid (round 1)")
    opt = cfg["optimizer"]
    if opt["nesterov"] and not (opt["name"] == "sgd" and opt["momentum"] > 0):
        raise UserError(f"{source}: key 'optimizer.nesterov': needs optimizer.name sgd with momentum > 0")
    sched = cfg["schedule"]
    if sched["name"] == "wsd" and sched["warmup_steps"] is None and sched["warmup_fraction"] + sched["cooldown_fraction"] > 1:
        raise UserError(f"{source}: key 'schedule.cooldown_fraction': {sched['cooldown_fraction']} plus warmup_fraction "
                        f"{sched['warmup_fraction']} exceeds the run; expected their sum at most 1")
    rules = opt["scale_with_batch"]
    if rules and rules["weight_decay"] and rules["reference_lr"] is None:
        raise UserError(f"{source}: key 'optimizer.scale_with_batch.reference_lr': the weight_decay rule needs the lr "
                        "at which optimizer.weight_decay holds; expected a positive number")
    if rules and (rules["beta2"] or rules["eps"]) and opt["name"] == "sgd":
        raise UserError(f"{source}: key 'optimizer.scale_with_batch': the beta2 and eps rules are adam/adamw's; "
                        "expected them off with sgd")
    model = cfg["model"]
    if cfg["task"]["name"] == "char_lm" and model["d_model"] % model["n_heads"]:
        raise UserError(f"{source}: key 'model.n_heads': {model['n_heads']} does not divide model.d_model {model['d_model']}")
    if cfg["budget"]["unit"] == "tokens" and cfg["task"]["name"] == "teacher_student":
        raise UserError(f"{source}: key 'budget.unit': 'tokens' needs a sequence task (char_lm), not teacher_student")
    _resolve_horizons(cfg, source)
    return cfg


def _resolve_horizons(cfg: dict, source) -> None:
    """budget.values, ascending; one value is budget.value (a one-horizon sweep, named as ever), several
    set budget.value to the longest."""
    values = cfg["budget"]["values"]
    if values is None:
        return
    if cfg["sweep"]["adaptive"]["rounds"] > 1 and len(values) > 1:
        raise UserError(f"{source}: key 'budget.values': several horizons with sweep.adaptive.rounds "
                        f"{cfg['sweep']['adaptive']['rounds']}; expected one horizon for an adaptive sweep")
    cfg["budget"]["values"] = sorted(values) if len(values) > 1 else None
    cfg["budget"]["value"] = max(values)
    sched, rules = cfg["schedule"], cfg["optimizer"]["scale_with_batch"]
    if branched(cfg) and sched["warmup_steps"] is None and sched["warmup_fraction"] > 0:
        raise UserError(f"{source}: key 'schedule.warmup_steps': wsd with several horizons branches every horizon from "
                        "one stable phase, so its warmup must not depend on the horizon; expected warmup_steps "
                        "(or warmup_fraction 0)")
    if branched(cfg) and rules and rules["weight_decay"]:
        raise UserError(f"{source}: key 'optimizer.scale_with_batch.weight_decay': its decay depends on the horizon, "
                        "which wsd with several horizons shares until each cool-down; expected it off")


def branched(cfg: dict) -> bool:
    """Whether each (B, lr, seed)'s horizons branch from one shared stable phase: wsd, several horizons."""
    return cfg["schedule"]["name"] == "wsd" and len(horizons(cfg)) > 1


def horizons(cfg: dict) -> list:
    """The sweep's horizons, shortest first: [None] for one (budget.value, names as ever), else budget.values."""
    return cfg["budget"]["values"] or [None]


def at_horizon(cfg: dict, horizon) -> dict:
    """The config of one horizon's runs: budget.value is the horizon (a one-horizon config: as it is)."""
    if horizon is None:
        return cfg
    out = copy.deepcopy(cfg)
    out["budget"].update(value=int(horizon), values=None)
    return out


def _check_lr_names(lrs, source) -> None:
    """Every lr must keep its own run name (names carry LR_DECIMALS decimals)."""
    names = {}
    for lr in lrs:
        name = lr_name(lr)
        if name in names:
            raise UserError(
                f"{source}: key 'sweep.lrs': {names[name]!r} and {lr!r} both format as {name} in run names; "
                f"expected lrs that differ at {LR_DECIMALS} decimals"
            )
        names[name] = lr
    for name, lr in names.items():
        if float(name) == 0.0:
            raise UserError(f"{source}: key 'sweep.lrs': {lr!r} formats as {name}; "
                            f"expected lr >= {0.5 * 10**-LR_DECIMALS:g}")


@lru_cache(maxsize=1)
def _defaults() -> dict:
    return validate({}, source="defaults")


def defaults() -> dict:
    """The complete default config: the schema's defaults, the one place they are written."""
    return copy.deepcopy(_defaults())


def load(path) -> dict:
    """Read a YAML (or JSON) sweep config safely and validate it."""
    path = Path(path)
    text = read_text(path, "config")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{at}; expected a sweep config mapping") from None
    return validate(raw if raw is not None else {}, source=str(path))


# Keys added after sweeps existed, left out of the training config while they hold their default: a
# sweep that does not use them keeps its config hash, so Snakemake reruns nothing and checkpoints
# still resume (the job fills the default back in when it validates the config it is given).
ADDED_LATER = {("optimizer", "scale_with_batch"): None, ("schedule", "cooldown_fraction"): 0.2,
               ("schedule", "cooldown_shape"): "1-sqrt", ("budget", "values"): None}


def train_config(cfg: dict) -> dict:
    """The sections a training job depends on."""
    out = {k: cfg[k] for k in TRAIN_SECTIONS}
    for (section, key), default in ADDED_LATER.items():
        if out[section].get(key, default) == default:
            out[section] = {k: v for k, v in out[section].items() if k != key}
    return out


def without_null(cfg: dict, keys) -> dict:
    """cfg without the (section, key)s of `keys` that are null: keys added with a null default after
    sweeps were made, so that those sweeps' rule params (and so their jobs) do not change."""
    out = dict(cfg)
    for section, key in keys:
        if section in out and key in out[section] and out[section][key] is None:
            out[section] = {k: v for k, v in out[section].items() if k != key}
    return out


def fit_config(cfg: dict) -> dict:
    """The sections the fit depends on: analysis settings, and train for final_window."""
    return without_null({k: cfg[k] for k in FIT_SECTIONS}, [("analysis", "by")])


def config_hash(cfg: dict) -> str:
    """Stable hash of the training-relevant config (what makes two runs comparable)."""
    blob = json.dumps(train_config(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def grid(cfg: dict) -> list[dict]:
    """All (batch_size, lr, seed) points in grid order: horizon-major (several horizons), then batch
    size, lr, seed. A point of a several-horizon sweep carries its `horizon`."""
    s = cfg["sweep"]
    return [
        {"batch_size": b, "lr": lr, "seed": seed, "name": run_name(b, lr, h), **({"horizon": h} if h else {})}
        for h in horizons(cfg)
        for b in s["batch_sizes"]
        for lr in s["lrs"]
        for seed in s["seeds"]
    ]
