"""User-facing errors: one line, exit code 2, no traceback (see cli.main)."""


class UserError(Exception):
    """Bad input from the user (config, CSV, metrics file, CLI flag). Exit code 2."""

    exit_code = 2


def where(path, key=None) -> str:
    """`file: key` prefix so every message names the file and the key."""
    return f"{path}: {key}" if key else f"{path}"
