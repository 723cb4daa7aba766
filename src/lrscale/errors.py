"""How a job ends when it cannot finish: the exceptions cli.main turns into exit codes.

  UserError  bad input (config, CSV, metrics file, CLI flag): one line on stderr, exit 2
  Preempted  SIGTERM (SLURM preemption / time limit): checkpoint written, one line, exit 143
Anything else is a bug and keeps its traceback (exit 1).
"""


class UserError(Exception):
    """Bad input from the user (config, CSV, metrics file, CLI flag). Exit code 2."""

    exit_code = 2


class Preempted(Exception):
    """SIGTERM received: a checkpoint was written; the job exits non-zero (SLURM requeue/retry)."""

    exit_code = 143  # 128 + SIGTERM, what a job killed by the signal would report


def schema_message(source, error) -> str:
    """One line for the first jsonschema error: `source: key 'a.b': message` (message capped)."""
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    msg = error.message if len(error.message) < 200 else error.message[:200] + "..."
    return f"{source}: key '{key}': {msg}".replace("\n", " ")
