"""Atomic writes: a finished result is never replaced by a partial one."""

import errno
import json
import math
import os
import tempfile
from pathlib import Path

from .errors import UserError


def atomic_write_bytes(path, data: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"{path}: cannot write output ({e.strerror}); expected a writable directory") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        reason = "no space left on device" if e.errno == errno.ENOSPC else e.strerror
        raise UserError(f"{path}: write failed: {reason}") from None


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def json_safe(obj):
    """Replace NaN/inf floats by None: the JSON we write is strict (no NaN/Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(json_safe(obj), indent=1, allow_nan=False) + "\n")


def check_writable_dir(path) -> None:
    """Fail early (before hours of training) when the output directory cannot be written."""
    d = Path(path).parent
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{d}: output directory cannot be created ({e.strerror})") from None
    if not os.access(d, os.W_OK):
        raise UserError(f"{d}: output directory is not writable; expected a writable directory")


def read_text(path, what: str) -> str:
    """A user-supplied text file, or a one-line UserError naming it (missing, unreadable, not UTF-8)."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise UserError(f"{path}: cannot read {what} ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: {what} is not UTF-8 text") from None
