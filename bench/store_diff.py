"""Two score_targets stores (two analysis versions) compared sweep by sweep on the same draws.

Each store line is one analysed sweep (cell, i); a line of the old store and one of the new with the same
(cell, i) analysed the same draw. Per cell: the sweeps whose record changed at all, those that moved (a
yes/no or the answer's kind changed, or the joint β or its half-width by more than MOVED), the answers that
changed kind (β, slopes, declined), the truth ruled out; on the sweeps both versions gave a joint β, its
coverage, median half-width, mean error, errors' SD and their SD in CI units (z = error / (half-width / 1.96),
about its mean, so a bias shows in the mean error, not here: near 1 for a right unbiased CI, under 1 a
conservative one; each version's closed CIs; the CI's own factor √F(1, dof) is about 2.0, so it reads 2-3% low);
then the cells pooled as score_targets pools them (power-law truths, bending truths).

    git show <old commit>:bench/results/score_targets.jsonl > /tmp/old.jsonl
    python bench/store_diff.py /tmp/old.jsonl bench/results/score_targets.jsonl [--out bench/out/store_diff.json]
"""

import argparse
import collections
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_targets import fmt  # noqa: E402

COMPARED = ("answer", "ruled_out", "wrong_single", "covered", "half_width", "error")
MOVED = 1e-3  # a record "moved": a yes/no or kind changed, or the joint β or its half-width by more than this


def moved(o, n) -> bool:
    """Whether a record changed by more than a solver's precision (a refit that lands on the same minimum
    from another start moves β by ~1e-5)."""
    if any(o.get(k) != n.get(k) for k in ("answer", "ruled_out", "wrong_single", "covered")):
        return True
    return any((o.get(k) is None) != (n.get(k) is None) or (o.get(k) is not None and abs(o[k] - n[k]) > MOVED)
               for k in ("half_width", "error"))


def read(path) -> dict:
    """{(cell, i): record} of one store, its one version (a store holding two is refused)."""
    out, versions = {}, set()
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        out[(r["cell"], r["i"])] = r
        versions.add(r["version"])
    if len(versions) != 1:
        sys.exit(f"{path}: expected one analysis version, found {sorted(versions) or 'none'}")
    return out


def compare(pairs) -> dict:
    """The paired counts of one group of (old, new) records."""
    both = [(o, n) for o, n in pairs if "covered" in o and "covered" in n]
    per_side = lambda fn: [fn(side) for side in zip(*both)] if both else [None, None]  # noqa: E731
    return {"n": len(pairs), "changed": sum(any(o.get(k) != n.get(k) for k in COMPARED) for o, n in pairs),
            "moved": sum(moved(o, n) for o, n in pairs),
            "answer_changed": sum(o["answer"] != n["answer"] for o, n in pairs),
            "declined": [sum(r["answer"] == "declined" for r in side) for side in zip(*pairs)],
            "ruled_out": [sum(r["ruled_out"] for r in side) for side in zip(*pairs)],
            "wrong_single": [sum(r["wrong_single"] for r in side) for side in zip(*pairs)],
            "joint_n": len(both), "covered": [sum(r["covered"] for r in side) for side in zip(*both)] or [0, 0],
            "median_half_width": per_side(lambda side: statistics.median(r["half_width"] for r in side)),
            "mean_error": per_side(_mean_error), "sd_error": per_side(_sd_error), "sd_z": per_side(_sd_z)}


def _errors(records) -> list:
    return [r["error"] for r in records if r.get("error") is not None]


def _mean_error(records) -> float | None:
    """The joint β's mean error."""
    errors = _errors(records)
    return statistics.fmean(errors) if errors else None


def _sd_error(records) -> float | None:
    """The joint β's errors' SD."""
    errors = _errors(records)
    return statistics.pstdev(errors) if len(errors) > 1 else None


def _sd_z(records) -> float | None:
    """The joint β's errors in units of its CI's half-width / 1.96 (closed CIs only): their SD."""
    z = [r["error"] / (r["half_width"] / 1.96) for r in records if r.get("error") is not None and r.get("half_width")]
    return statistics.pstdev(z) if len(z) > 1 else None


def row(name, c) -> str:
    """One markdown row: old → new for each count."""
    arrow = lambda key, spec="d": f"{fmt(c[key][0], spec)} → {fmt(c[key][1], spec)}"  # noqa: E731
    cells = [name, c["n"], c["changed"], c["moved"], c["answer_changed"], arrow("declined"), arrow("ruled_out"),
             arrow("wrong_single"), c["joint_n"], arrow("covered"), arrow("median_half_width", ".3f"),
             arrow("mean_error", "+.4f"), arrow("sd_error", ".4f"), arrow("sd_z", ".2f")]
    return "| " + " | ".join(map(str, cells)) + " |"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--out", default="bench/out/store_diff.json")
    args = ap.parse_args()
    old, new = read(args.old), read(args.new)
    keys = sorted(set(old) & set(new))
    cells, pools = collections.defaultdict(list), collections.defaultdict(list)
    for k in keys:
        cells[k[0]].append((old[k], new[k]))
        pools["pooled " + ("power law" if old[k]["power_law"] else "bending")].append((old[k], new[k]))
    rows = {name: compare(pairs) for name, pairs in [*cells.items(), *sorted(pools.items())]}
    head = ["cell", "n", "changed", f"moved > {MOVED:g}", "answer kind changed", "declined", "ruled out", "wrong single",
            "joint β both", "joint covered", "joint median half-width", "joint mean error", "joint error SD",
            "joint error SD in CI units"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name, c in rows.items():
        if c["moved"] or name.startswith("pooled"):
            print(row(name, c))
    unchanged = [name for name, c in rows.items() if not c["changed"] and not name.startswith("pooled")]
    still = [name for name, c in rows.items() if not c["moved"] and not name.startswith("pooled")]
    print(f"\n{len(keys)} sweeps paired ({next(iter(old.values()))['version']} → {next(iter(new.values()))['version']}); "
          f"cells with no record changed: {len(unchanged)}; with none moved by more than {MOVED:g} (not listed): "
          f"{len(still)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"old": args.old, "new": args.new, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
