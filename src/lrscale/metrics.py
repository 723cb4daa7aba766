"""Read and validate metrics.json files (the train -> aggregate contract), and what the readers take
from them (every run of a sweep, its noise probes). Never imports torch."""

import json
import os
from functools import lru_cache
from pathlib import Path

import jsonschema

from .config import HORIZON, LR_DECIMALS, RUN_NAME, load_schema, run_name_pattern
from .errors import UserError, schema_message
from .fileio import read_text


@lru_cache(maxsize=1)
def schema() -> dict:
    """metrics.schema.yaml with the run-name rule filled in from lrscale.config (its one definition)."""
    s = load_schema("metrics.schema.yaml")
    s["properties"]["name"].update(pattern=run_name_pattern(), description=f"Run name, {RUN_NAME} (lr with "
                                   f"{LR_DECIMALS} decimals), then /{HORIZON} at one horizon of several.")
    return s


@lru_cache(maxsize=1)
def _validator():
    return jsonschema.Draft202012Validator(schema())


def _reject_constant(token):
    raise ValueError(f"non-standard JSON number {token}")


def read(path) -> dict:
    """Parse and validate one metrics.json; any problem is a UserError naming the file and key."""
    path = Path(path)
    text = read_text(path, "metrics file")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError as e:
        raise UserError(f"{path}: corrupt metrics file, not valid JSON ({e}); delete it to rerun that job") from None
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise UserError(f"{schema_message(path, errors[0])}; delete it to rerun that job")
    n = {k: len(v) for k, v in data["curves"].items() if k in _validator().schema["properties"]["curves"]["required"]}
    if len(set(n.values())) > 1:
        raise UserError(f"{path}: key 'curves': lists of different lengths {n}; delete it to rerun that job")
    return data


def load_all(paths) -> list[dict]:
    """Validate every metrics file (a corrupt one is an error naming it, never skipped)."""
    runs = [read(p) for p in paths]
    for p, m in zip(paths, runs):  # files from before `finished_at`: written once, at the job's end
        m.setdefault("finished_at", os.path.getmtime(p))
    seen = {}
    for p, m in zip(paths, runs):
        key = (m["batch_size"], m["lr"], m["seed"], m.get("horizon"))
        if key in seen:
            raise UserError(f"{p}: duplicate run {m['name']} seed {m['seed']} (also in {seen[key]})")
        seen[key] = p
    return sorted(runs, key=lambda m: (m.get("horizon") or 0, m["batch_size"], m["lr"], m["seed"]))


def finite_probes(m: dict) -> list[dict]:
    """The run's noise probes with finite gradients, in step order ([] when probes are off, or metrics v1)."""
    return [p for p in (m.get("noise") or {}).get("probes", []) if p.get("finite")]


def last_probe(m: dict) -> dict:
    """The run's last finite noise probe, or {}."""
    finite = finite_probes(m)
    return finite[-1] if finite else {}
