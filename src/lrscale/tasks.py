"""Training tasks: the built-ins and the plugin hook.

A task builder is `build(cfg, seed, device) -> Task`, where cfg holds the training sections of the
resolved sweep config (task, model, optimizer, schedule, budget, train: defaults filled), the same
under Snakemake and `lrscale train`. Not sweep/wandb/analysis: a run depends only on what reruns it.
Contract (plugins follow it too, see config/README.md):
  - model init depends only on `seed`;
  - `sample_batch(gen, batch_size)` draws one training batch using ONLY the CPU generator `gen`
    (the runner seeds it from (seed, batch size) and checkpoints it), returned on `device`;
  - `loss(model, x, y)` returns a scalar tensor;
  - `val_batches` is a fixed list of (x, y) on `device`, the same for every run.
"""

import hashlib
import importlib
import math
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import UserError


@dataclass
class Task:
    model: nn.Module
    sample_batch: Callable[[torch.Generator, int], tuple]
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
    val_batches: list
    tokens_per_sample: int | None = None  # sequence tasks: enables tokens budget and tokens_per_s
    train_samples: float | None = None  # the training set's size in samples (epochs); None: fresh data every step


def to_device(t: torch.Tensor, device) -> torch.Tensor:
    """CPU -> device without a host sync: a pageable copy would wait for the GPU every step."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t


def mse_loss(model, x, y):
    return F.mse_loss(model(x).float(), y)


# ---------------------------------------------------------------- teacher_student
def _mlp(sizes, gen):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b)
        bound = 1 / math.sqrt(a)
        with torch.no_grad():  # explicit generator: init depends on the seed and nothing else
            lin.weight.uniform_(-bound, bound, generator=gen)
            lin.bias.uniform_(-bound, bound, generator=gen)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def unit_noise(kind: str, shape, gen, df: float = 3.0) -> torch.Tensor:
    """Unit-variance label noise of the requested family (all drawn from `gen`)."""
    if kind == "gaussian":
        return torch.randn(shape, generator=gen)
    u = torch.rand(shape, generator=gen).clamp(1e-7, 1 - 1e-7)
    if kind == "laplace":  # inverse CDF; Laplace(b) has variance 2b², so b = 1/√2
        return -torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs()) / math.sqrt(2)
    if kind == "student_t":  # t = z / sqrt(chi²/df), chi² from a Gamma; variance df/(df-2)
        z = torch.randn(shape, generator=gen)
        chi2 = torch._standard_gamma(torch.full(shape, df / 2), generator=gen) * 2
        return z / torch.sqrt(chi2 / df) * math.sqrt((df - 2) / df)
    raise UserError(f"task.noise: unknown noise '{kind}'; expected gaussian, laplace or student_t")


def teacher_student(cfg, seed, device) -> Task:
    t, m = cfg["task"], cfg["model"]
    d = t["input_dim"]
    tgen = torch.Generator().manual_seed(t["teacher_seed"])
    teacher = _mlp([d, t["teacher_hidden"], 1], tgen)
    with torch.no_grad():
        # N(0, 1/fan_in) hidden weights put tanh in its non-linear range; then scale the output to unit
        # variance so noise_scale reads as noise-to-signal and the student has something to learn.
        teacher[0].weight.normal_(0, 1 / math.sqrt(d), generator=tgen)
        probe = teacher(torch.randn(8192, d, generator=tgen))
        teacher[-1].weight /= probe.std()
        teacher[-1].bias.sub_(probe.mean()).div_(probe.std())
    teacher = teacher.to(device).requires_grad_(False)
    student = _mlp([d] + [m["hidden"]] * m["depth"] + [1], torch.Generator().manual_seed(seed))

    def sample_batch(gen, batch_size):
        x = torch.randn(batch_size, d, generator=gen)
        noise = t["noise_scale"] * unit_noise(t["noise"], (batch_size, 1), gen, t["df"])
        x, noise = to_device(x, device), to_device(noise, device)
        with torch.no_grad():
            y = teacher(x) + noise
        return x, y

    # Validation against the CLEAN teacher on a held-out set fixed by the teacher seed.
    vgen = torch.Generator().manual_seed(t["teacher_seed"] + 1)
    xv = torch.randn(t["val_size"], d, generator=vgen).to(device)
    with torch.no_grad():
        yv = teacher(xv)
    val = [(xv[i : i + 4096], yv[i : i + 4096]) for i in range(0, len(xv), 4096)]
    return Task(student, sample_batch, mse_loss, val)


# ---------------------------------------------------------------- char_lm
class Block(nn.Module):
    def __init__(self, d, heads, dropout):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(dropout))
        self.heads, self.dropout = heads, dropout

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).transpose(1, 3).unbind(2)
        p = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class CharGPT(nn.Module):
    def __init__(self, vocab, seq_len, d, layers, heads, dropout):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(seq_len, d)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*[Block(d, heads, dropout) for _ in range(layers)])
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.head(self.ln(self.blocks(self.drop(self.tok(idx) + self.pos(pos)))))


def lm_loss(model, x, y):
    logits = model(x)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_corpus(data: dict) -> Path:
    """Local path, or a verified download cached by its sha256 (never used before it matches)."""
    if data.get("path"):
        p = Path(data["path"]).expanduser()
        if not p.is_file():
            raise UserError(f"task.data.path: corpus file {p} not found; expected a readable text file")
        if data.get("sha256") and _sha256(p) != data["sha256"]:
            raise UserError(f"task.data.sha256: {p} does not match sha256 {data['sha256']}")
        return p
    if not data.get("url"):
        raise UserError("task.data: char_lm needs data.path or data.url + data.sha256")
    if not data.get("sha256"):
        raise UserError("task.data.sha256: required with data.url (downloads are used only once verified)")
    cache = Path(data.get("cache_dir") or os.environ.get("LRSCALE_CACHE", "~/.cache/lrscale")).expanduser()
    target = cache / f"{data['sha256']}.txt"
    if target.is_file() and _sha256(target) == data["sha256"]:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{data['sha256']}.{os.getpid()}.part"
    try:
        with urllib.request.urlopen(data["url"], timeout=30) as r, open(tmp, "wb") as f:
            f.write(r.read())
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"task.data.url: cannot download {data['url']} ({e}); offline and not cached in {cache}") from None
    got = _sha256(tmp)
    if got != data["sha256"]:
        tmp.unlink(missing_ok=True)
        raise UserError(f"task.data.sha256: download of {data['url']} has sha256 {got}, expected {data['sha256']}")
    os.replace(tmp, target)
    return target


def char_lm(cfg, seed, device) -> Task:
    t, m = cfg["task"], cfg["model"]
    path = fetch_corpus(t["data"])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: corpus is not readable UTF-8 text ({e.__class__.__name__})") from None
    seq = t["seq_len"]
    vocab = sorted(set(text))
    lookup = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([lookup[c] for c in text], dtype=torch.long)
    split = int(0.9 * len(ids))  # 90/10 split by position
    train_ids, val_ids = ids[:split], ids[split:]
    if len(train_ids) <= seq + 1 or len(val_ids) <= seq + 1:
        raise UserError(f"{path}: corpus too small ({len(text)} chars) for seq_len {seq}; expected > {10 * (seq + 2)} chars")
    torch.manual_seed(seed)  # init depends only on the seed
    model = CharGPT(len(vocab), seq, m["d_model"], m["n_layers"], m["n_heads"], m["dropout"])
    train_dev = train_ids.to(device)

    def sample_batch(gen, batch_size):
        starts = to_device(torch.randint(0, len(train_ids) - seq - 1, (batch_size,), generator=gen), device)
        offs = starts[:, None] + torch.arange(seq + 1, device=device)
        chunk = train_dev[offs]
        return chunk[:, :-1], chunk[:, 1:]

    # Fixed validation set: non-overlapping windows of the held-out 10%.
    n_val = len(val_ids) - 1 if t["val_tokens"] is None else min(t["val_tokens"], len(val_ids) - 1)
    windows = n_val // seq
    if windows == 0:
        raise UserError(f"task.val_tokens: {t['val_tokens']} validation tokens are fewer than one sequence; "
                        f"expected at least seq_len ({seq})")
    xv = val_ids[: windows * seq].view(windows, seq)
    yv = val_ids[1 : windows * seq + 1].view(windows, seq)
    val = [(xv[i : i + 64].to(device), yv[i : i + 64].to(device)) for i in range(0, windows, 64)]
    return Task(model, sample_batch, lm_loss, val, tokens_per_sample=seq, train_samples=len(train_ids) / seq)


BUILTIN = {"teacher_student": teacher_student, "char_lm": char_lm}


def resolve(name: str):
    """Built-in name, or a plugin 'package.module:function' (imported only because the config names it)."""
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" not in name:
        raise UserError(f"task.name: unknown task '{name}'; expected one of {sorted(BUILTIN)} or 'package.module:function'")
    module, _, func = name.partition(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as e:
        raise UserError(f"task.name: cannot load plugin '{name}' ({e.__class__.__name__}: {e})") from None
