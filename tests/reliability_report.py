"""Render docs/RELIABILITY.md from the rows the reliability tests record (JSON lines)."""

import json
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path

HEADER = """# Reliability

What lrscale survives, measured by automated tests (all of them run in CI via `make test`).
Regenerate this file with:

    make reliability

(runs tests/test_reliability.py, test_fuzz.py, test_wandb.py, test_train.py and test_secrets.py with
`LRSCALE_RELIABILITY_JSON` set, then `python tests/reliability_report.py`). "Runs lost" counts
finished results that a fault destroyed: it must be 0.

Security properties held by the code and checked by tests: YAML is loaded with `yaml.safe_load`;
no `shell=True` and no shell command is built from config values outside Snakemake's quoting
(`{params.x:q}`); `sweep.name` must match `^[A-Za-z0-9][A-Za-z0-9_.-]*$`, so no config-derived path
leaves `results/`; a downloaded corpus is used only after its sha256 matches and a mismatch leaves no
cached file; a plugin task module is imported only when `task.name` names it.
"""


def main(src, dst):
    rows = [json.loads(line) for line in Path(src).read_text().splitlines() if line.strip()]
    grouped = defaultdict(lambda: {"trials": 0, "survived": 0, "runs_lost": 0, "notes": []})
    order = []
    for r in rows:
        key = (r["family"], r["name"])
        if key not in grouped:
            order.append(key)
        g = grouped[key]
        g["trials"] += r["trials"]
        g["survived"] += r["survived"]
        g["runs_lost"] += r["runs_lost"]
        if r["note"]:
            g["notes"].append(r["note"])
    out = [HEADER, f"Last regenerated: {date.today().isoformat()}.\n"]
    for family, title in (("fault", "Faults"), ("bad input", "Bad input, fuzzed"), ("security", "Security")):
        keys = [k for k in order if k[0] == family]
        if not keys:
            continue
        out.append(f"\n## {title}\n\n| {'fault' if family == 'fault' else 'input'} | trials | survived | runs lost | notes |\n|---|---|---|---|---|")
        for k in keys:
            g = grouped[k]
            out.append(f"| {k[1]} | {g['trials']} | {g['survived']} | {g['runs_lost']} | {'; '.join(g['notes'][:3])} |")
    total = sum(g["trials"] for (f, _), g in grouped.items() if f == "bad input")
    out.append(f"\nBad inputs tried in all: {total}.\n")
    Path(dst).write_text("\n".join(out) + "\n")
    print(f"wrote {dst}: {len(order)} rows")


if __name__ == "__main__":
    main(*sys.argv[1:3])
