"""Give each concurrent training job its own GPU: a lock-file slot pool over the visible devices.

Snakemake's `--resources gpu=K` caps how many jobs run at once but assigns no device, so without
this every job lands on cuda:0. A job takes one of S slots on one device (S = slots per GPU;
small models share a card well) by holding an exclusive `flock` on a slot file. The kernel drops
the lock when the process exits however it dies (kill -9 included), so a dead job's slot is
reclaimed with no stale-lock cleanup. Then CUDA_VISIBLE_DEVICES is narrowed to that device
before CUDA is initialised.

Environment (hardware settings, not experiment config):
  LRSCALE_SLOTS_PER_GPU   slots per device (default 1)
  LRSCALE_GPU_LOCK_DIR    where slot files live (default /tmp/lrscale-gpu-slots-$UID); must be
                          shared by all jobs on the machine
  LRSCALE_GPU_DEVICES     device list to use instead of CUDA_VISIBLE_DEVICES / the driver's count
                          (tests use it to fake GPUs)
"""

import fcntl
import os
import time
from pathlib import Path

from .errors import UserError


def visible_devices() -> list[str]:
    for var in ("LRSCALE_GPU_DEVICES", "CUDA_VISIBLE_DEVICES"):
        value = os.environ.get(var)
        if value is not None and value.strip() != "":
            return [d.strip() for d in value.split(",") if d.strip()]
    # Count the driver's device nodes: asking CUDA would initialise it, after which
    # CUDA_VISIBLE_DEVICES can no longer be narrowed for this process.
    return sorted((p.name[6:] for p in Path("/dev").glob("nvidia[0-9]*")), key=int)


def slots_per_gpu() -> int:
    raw = os.environ.get("LRSCALE_SLOTS_PER_GPU", "1")
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"LRSCALE_SLOTS_PER_GPU: {raw!r}; expected a positive integer")
    return value


class Slot:
    """A held (device, slot) pair; released on close() or when the process exits."""

    def __init__(self, device: str, index: int, fd: int, path: Path):
        self.device, self.index, self._fd, self.path = device, index, fd, path

    def close(self):
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def acquire(devices=None, per_gpu=None, lock_dir=None, timeout_s=None, poll_s=0.2) -> Slot:
    """Block until a slot is free; spread jobs over devices before stacking them on one."""
    devices = visible_devices() if devices is None else devices
    if not devices:
        raise UserError("GPU slots: no visible CUDA device; expected CUDA_VISIBLE_DEVICES or a GPU")
    per_gpu = slots_per_gpu() if per_gpu is None else per_gpu
    lock_dir = Path(lock_dir or os.environ.get("LRSCALE_GPU_LOCK_DIR") or f"/tmp/lrscale-gpu-slots-{os.getuid()}")
    lock_dir.mkdir(parents=True, exist_ok=True)
    order = [(d, k) for k in range(per_gpu) for d in devices]  # slot 0 of every device first
    t0 = time.monotonic()
    while True:
        for device, k in order:
            path = lock_dir / f"gpu{device}.slot{k}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())  # for humans: who holds it
            return Slot(device, k, fd, path)
        if timeout_s is not None and time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"no free GPU slot among {len(order)} after {timeout_s} s")
        time.sleep(poll_s)


def bind_process(slot: Slot) -> None:
    """Make this process (and its children) see only the slot's device, as cuda:0."""
    os.environ["CUDA_VISIBLE_DEVICES"] = slot.device
