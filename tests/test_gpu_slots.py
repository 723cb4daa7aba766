"""Issue 5: the GPU slot pool, on CPU with a fake device list (LRSCALE_GPU_DEVICES)."""

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import cli, read_json
from lrscale import gpu_slots

HOLDER = r"""
import json, os, sys, time
from lrscale import gpu_slots
slot = gpu_slots.acquire(poll_s=0.01)
t_in = time.time()
print("held", flush=True)
time.sleep(float(sys.argv[1]))
print(json.dumps({"device": slot.device, "slot": slot.index, "t_in": t_in, "t_out": time.time(),
                  "cvd": None}), flush=True)
"""


def _env(tmp_path, devices="0,1", per_gpu=2):
    return {**os.environ, "LRSCALE_GPU_DEVICES": devices, "LRSCALE_SLOTS_PER_GPU": str(per_gpu),
            "LRSCALE_GPU_LOCK_DIR": str(tmp_path / "locks")}


def test_concurrent_jobs_never_share_a_slot(tmp_path):
    env = _env(tmp_path, "0,1", 2)  # 4 slots, 10 jobs
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, "0.4"], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(10)]
    held = [json.loads(p.communicate(timeout=60)[0].splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    overlapping = [(a, b) for i, a in enumerate(held) for b in held[i + 1:]
                   if a["t_in"] < b["t_out"] and b["t_in"] < a["t_out"]]
    assert len(overlapping) >= 3  # 10 jobs on 4 slots: jobs really ran side by side
    assert all((a["device"], a["slot"]) != (b["device"], b["slot"]) for a, b in overlapping)
    # at no moment does a device hold more than S=2 jobs
    for t in sorted(h["t_in"] for h in held):
        for dev in ("0", "1"):
            assert sum(1 for h in held if h["device"] == dev and h["t_in"] <= t < h["t_out"]) <= 2
    assert {h["device"] for h in held} == {"0", "1"}


def test_killed_holder_slot_is_reused(tmp_path):
    env = _env(tmp_path, "0", 1)
    p = subprocess.Popen([sys.executable, "-c", HOLDER, "60"], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip() == "held"  # the holder has the only slot now
    with pytest.raises(TimeoutError):
        gpu_slots.acquire(devices=["0"], per_gpu=1, lock_dir=tmp_path / "locks", timeout_s=0.5)
    p.send_signal(signal.SIGKILL)
    p.wait()
    slot = gpu_slots.acquire(devices=["0"], per_gpu=1, lock_dir=tmp_path / "locks", timeout_s=5)
    assert (slot.device, slot.index) == ("0", 0)
    slot.close()


def test_spreads_over_devices_first(tmp_path):
    a = gpu_slots.acquire(devices=["0", "1"], per_gpu=2, lock_dir=tmp_path)
    b = gpu_slots.acquire(devices=["0", "1"], per_gpu=2, lock_dir=tmp_path)
    assert {a.device, b.device} == {"0", "1"}
    a.close(), b.close()


def test_respects_preset_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("LRSCALE_GPU_DEVICES", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert gpu_slots.visible_devices() == ["3", "5"]


def test_bad_slots_setting(monkeypatch):
    monkeypatch.setenv("LRSCALE_SLOTS_PER_GPU", "zero")
    with pytest.raises(Exception, match="LRSCALE_SLOTS_PER_GPU"):
        gpu_slots.slots_per_gpu()


def test_train_records_its_device(tmp_path, cfg_file):
    env = {"LRSCALE_GPU_DEVICES": "7", "LRSCALE_GPU_LOCK_DIR": str(tmp_path / "locks")}
    r = cli("train", "--config", cfg_file, "--batch-size", 8, "--lr", 0.003, "--out", tmp_path / "m.json",
            env=env)  # in this process: cli() restores the CUDA_VISIBLE_DEVICES the slot binds
    assert r.returncode == 0, r.stderr
    m = read_json(tmp_path / "m.json")
    assert m["cuda_visible_devices"] == "7" and m["gpu_slot"] == "gpu7/slot0"
