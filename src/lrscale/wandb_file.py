"""Read an offline W&B run file (run-*.wandb) back: wandb 0.31 ships no public reader.

Format: LevelDB-log framing. A 7-byte file header (b":W&B", uint16 0xBEE1, uint8 version 0), then
32 KiB blocks of chunks; each chunk has a 7-byte header (uint32 crc32 over type byte + data,
uint16 length, uint8 type 1 FULL / 2 FIRST / 3 MIDDLE / 4 LAST). Block tails shorter than 7 bytes
are padding. Each record is a wandb.proto.wandb_internal_pb2.Record.
"""

import json
import struct
import zlib
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def iter_payloads(path):
    data = Path(path).read_bytes()
    if len(data) < HEADER or data[:4] != b":W&B" or struct.unpack("<H", data[4:6])[0] != 0xBEE1:
        raise ValueError(f"{path}: not a W&B run file (bad header)")
    pos, pending = HEADER, None
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # padding at a block's tail
            pos += left_in_block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        if zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF != crc:
            raise ValueError(f"{path}: checksum mismatch at byte {pos}")
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = bytearray(chunk)
        elif kind == MIDDLE and pending is not None:
            pending += chunk
        elif kind == LAST and pending is not None:
            pending += chunk
            yield bytes(pending)
            pending = None


def _key(item) -> str:
    return ".".join(item.nested_key) if item.nested_key else item.key


def records(path):
    from wandb.proto import wandb_internal_pb2

    for payload in iter_payloads(path):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(payload)
        yield rec


def history(path) -> list[dict]:
    """Every logged row, in order, as {key: value} (nested keys joined with '.')."""
    out = []
    for rec in records(path):
        if rec.WhichOneof("record_type") != "history":
            continue
        row = {}
        for item in rec.history.item:
            row[_key(item)] = json.loads(item.value_json)
        out.append(row)
    return out


def run_info(path) -> dict:
    """project, name and config of the run (the `run` record, plus later `config` updates)."""
    info = {"project": None, "name": None, "config": {}}
    for rec in records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            info["project"], info["name"] = rec.run.project, rec.run.display_name
        updates = rec.run.config.update if kind == "run" else rec.config.update if kind == "config" else []
        for item in updates:
            info["config"][_key(item)] = json.loads(item.value_json)
    info["config"].pop("_wandb", None)
    return info


def metric_definitions(path) -> list:
    return [rec.metric for rec in records(path) if rec.WhichOneof("record_type") == "metric"]


def charts(path) -> dict:
    """The run's pre-built charts (`wandb.plot.*`): key -> its panel config (panelDefId, fieldSettings,
    stringSettings), from the `_wandb.visualize` config entries."""
    out = {}
    for rec in records(path):
        if rec.WhichOneof("record_type") != "config":
            continue
        for item in rec.config.update:
            if list(item.nested_key[:2]) == ["_wandb", "visualize"] and len(item.nested_key) == 3:
                out[item.nested_key[2]] = json.loads(item.value_json)["panel_config"]
    return out


def table(path, key) -> dict:
    """A logged wandb.Table ({"columns", "data"}) read back from the run's files; a chart's data
    table is logged as `<key>_table`."""
    for row in history(path):
        if f"{key}.path" in row:
            return json.loads((Path(path).parent / "files" / row[f"{key}.path"]).read_text())
    raise KeyError(f"{path}: no table {key!r}")
