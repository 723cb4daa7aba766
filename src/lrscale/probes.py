"""Gradient-noise probes inside a training run: at a few steps, the gradients of m
independent mini-batches of the run's own batch size, summarised by lrscale.noise.

A probe leaves the run exactly as it found it: its batches come from a stream of their own (a
function of the run's stream seed and the probe's step, so a resumed run probes the same batches),
the global RNG (dropout) is forked and restored, and gradients come from torch.autograd.grad, so
neither .grad nor the optimizer is touched. The training trajectory is bit-identical with probes
on or off (a test checks). The eager model is probed, never the compiled wrapper.
"""

import numpy as np
import torch

from . import noise

PROBE_SALT = 0x5EED_0F_9E15E  # keeps the probe streams apart from every training stream
SHAPE_COORDINATES = 4096
SUMMARY_KEYS = ("trace_sigma", "trace_sigma_se", "trace_sigma_ci95", "g2", "g2_se", "b_simple", "b_simple_ci95",
                "kurtosis", "kurtosis_ci95", "tail_index", "tail_index_ci95", "tail_k", "tail")


def param_groups(model: torch.nn.Module) -> dict:
    """Column ranges of the flattened gradient by role: embedding, attention, mlp, other."""
    embedding = {id(p) for mod in model.modules() if isinstance(mod, torch.nn.Embedding) for p in mod.parameters()}
    groups, start = {}, 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        parts = name.split(".")
        if id(p) in embedding:
            role = "embedding"
        elif "mlp" in parts:
            role = "mlp"
        elif {"qkv", "proj", "attn", "attention"} & set(parts):
            role = "attention"
        else:
            role = "other"
        groups.setdefault(role, []).append(np.arange(start, start + p.numel()))
        start += p.numel()
    return {role: np.concatenate(cols) for role, cols in groups.items()}


def summarise(grads: np.ndarray, batch_size: int) -> dict:
    """The noise statistics of one probe's (m, P) gradients (None where undefined). B_simple uses
    every coordinate; the kurtosis and the tail, averages over coordinates whose error is set by m,
    a fixed random subset of at most SHAPE_COORDINATES (keeps a probe cheap on big models)."""
    shape = grads
    if grads.shape[1] > SHAPE_COORDINATES:
        cols = np.random.default_rng(0).choice(grads.shape[1], SHAPE_COORDINATES, replace=False)
        shape = grads[:, np.sort(cols)]
    tail = noise.tail_index(noise.standardized_noise(shape))
    if tail["tail"] != "power":  # a light or unclear tail has no index worth a number (bench: noise_estimators)
        tail.update(tail_index=None, tail_index_ci95=None)
    out = {**noise.noise_scale(grads, batch_size), **noise.noise_kurtosis(shape, batch_size), **tail, "tail_k": tail["k"]}
    return {k: out.get(k) for k in SUMMARY_KEYS}


def forked_rng(device: torch.device):
    """The global RNG (CPU, and this CUDA device) restored on exit: what runs inside never moves the
    training trajectory (dropout draws from it)."""
    return torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else [])


def probe(job, step: int, params: list, groups: dict, m: int) -> dict:
    """m mini-batch gradients at the current parameters, summarised over all parameters and by group."""
    gen = torch.Generator().manual_seed((job.stream_seed ^ PROBE_SALT) + step)
    rows = []
    with forked_rng(job.device):
        for _ in range(m):
            x, y = job.task.sample_batch(gen, job.batch_size)
            with job.autocast:
                loss = job.task.loss(job.model, x, y)
            grads = torch.autograd.grad(loss, params)
            rows.append(torch.cat([g.reshape(-1).float() for g in grads]))
    matrix = torch.stack(rows).double().cpu().numpy()  # the probe's one host sync
    out = {"step": step, "m": m, "batch_size": job.batch_size}
    if not np.isfinite(matrix).all():  # a diverging run: no statistics, not a crash
        return {**out, "finite": False, **{k: None for k in SUMMARY_KEYS}, "groups": {}}
    return {**out, "finite": True, **summarise(matrix, job.batch_size),
            "groups": {role: summarise(matrix[:, cols], job.batch_size) for role, cols in groups.items()}}
