"""Markdown report of a pytest-benchmark JSON: per group, every contender side by side with romp_fast.

    python benchmarks/report.py bench.json [more.json ...] [--summary-only] [--no-summary]

Several JSON files (e.g. the default tier and a slow run) are merged; machine facts come from the
first, and a group measured in more than one file keeps the last file's rows.

Speed-up = contender_min / romp_fast_min from the same run (">1" means romp_fast is faster). Rows
timed on a subset of the batch (``extra_info.timed_B < B``, the per-sample loops) are extrapolated
linearly to the full batch and marked ``*``. ``stream_floor`` (one read of the inputs) is not a
peer: its row shows how far romp_fast is from the memory floor instead. Reads the fields that
benchmarks/conftest.py records (contender, B, J, dtype, threads, input_bytes); groups without them
are still listed, with what is known.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys

OURS = "romp_fast"
FLOOR = "stream_floor"
KIND_ORDER = {"fwd": 0, "fwd+bwd": 1}


def fmt_time(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_ratio(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.0f}×" if x >= 100 else f"{x:.3g}×"


def contender_of(bench: dict) -> str:
    info = bench.get("extra_info", {})
    if "contender" in info:
        return info["contender"]
    param = bench.get("param") or bench["name"]
    return re.split(r"[-\[\]]", param.strip("]"))[-1] or bench["name"]


def machine_lines(machine: dict, commit: dict, when: str | None) -> list[str]:
    cpu = machine.get("cpu", {})
    model = machine.get("cpu_model") or cpu.get("brand_raw") or machine.get("processor") or "?"
    details = []
    if cpu.get("family") is not None:
        details.append(f"family {cpu.get('family')} model {cpu.get('model')}")
    if cpu.get("hz_advertised_friendly"):
        details.append(cpu["hz_advertised_friendly"])
    details.append(f"{machine.get('logical_cpus') or cpu.get('count', '?')} logical CPUs")
    threads = machine.get("threads", {})
    versions = machine.get("versions", {})
    build = machine.get("romp_fast_build", {})
    lines = [
        f"- Machine: {model} ({', '.join(details)}), {machine.get('system', '')} "
        f"{machine.get('release', '')}, Python {machine.get('python_version', '?')}",
        f"- Threads: torch {threads.get('torch_threads', '?')}, "
        f"OMP_NUM_THREADS={threads.get('OMP_NUM_THREADS', '?')} (every contender)",
    ]
    if versions:
        lines.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if build:
        lines.append(f"- romp_fast build: simd={build.get('simd')}, cuda={build.get('cuda_version')}, "
                     f"debug={build.get('debug')}")
    rev = commit.get("id")
    if rev or when:
        dirty = " (dirty tree)" if commit.get("dirty") else ""
        lines.append(f"- Run: {when or '?'}, git {str(rev)[:10]}{dirty}")
    return lines


def rows_of(benchmarks: list[dict]) -> dict[str, list[dict]]:
    """group -> rows with full-batch times (extrapolated where a subset was timed)."""
    groups: dict[str, list[dict]] = {}
    for b in benchmarks:
        stats = b.get("stats") or {}
        if "min" not in stats:
            continue
        info = b.get("extra_info", {})
        B = info.get("B")
        timed_B = info.get("timed_B", B)
        scale = (B / timed_B) if B and timed_B else 1.0
        rows = groups.setdefault(b.get("group") or b["name"], [])
        name = contender_of(b)
        rows[:] = [r for r in rows if r["contender"] != name]  # a repeated test: keep the last
        rows.append({
            "contender": name, "min": stats["min"] * scale,
            "median": stats["median"] * scale, "rounds": stats.get("rounds"),
            "extrapolated": scale != 1.0, "timed_B": timed_B, "B": B, "J": info.get("J"),
            "dtype": info.get("dtype"), "kind": info.get("kind", ""),
            "mask_frac": info.get("mask_frac", 0.0), "bytes": info.get("input_bytes"),
        })
    return groups


def group_key(item):
    name, rows = item
    r = rows[0]
    return (KIND_ORDER.get(r["kind"], 9), r["dtype"] or "", r["mask_frac"] or 0.0,
            r["J"] or 0, r["B"] or 0, name)


def ours_min(rows):
    return next((r["min"] for r in rows if r["contender"] == OURS), None)


def family_of(name: str) -> str:
    """Hot path a group belongs to: 'pa_mpjpe-fwd J=24 B=64' -> 'pa_mpjpe'."""
    return re.split(r"[- ]", name, maxsplit=1)[0]


def summary_table(groups) -> list[str]:
    """One table per hot path: a line per case, ratios against every peer of that hot path."""
    out = []
    families: dict[str, list] = {}
    for item in groups:
        families.setdefault(family_of(item[0]), []).append(item)
    for family, items in families.items():
        peers = []
        for _, rows in items:
            for r in rows:
                if r["contender"] not in (OURS, FLOOR) and r["contender"] not in peers:
                    peers.append(r["contender"])
        has_floor = any(r["contender"] == FLOOR for _, rows in items for r in rows)
        head = ["case", "romp_fast min", "ns/item"] + [f"vs {p}" for p in peers]
        head += ["ours / floor"] if has_floor else []
        out += [f"#### {family}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, rows in items:
            ours = ours_min(rows)
            by = {r["contender"]: r for r in rows}
            B = rows[0]["B"]
            cells = [name[len(family):].lstrip("- "), fmt_time(ours),
                     f"{ours * 1e9 / B:.0f}" if ours and B else "n/a"]
            for p in peers:
                r = by.get(p)
                cells.append("" if r is None or not ours else
                             fmt_ratio(r["min"] / ours) + ("*" if r["extrapolated"] else ""))
            if has_floor:
                floor = by.get(FLOOR)
                cells.append(fmt_ratio(ours / floor["min"]) if floor and ours else "")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return out


def group_table(name, rows) -> list[str]:
    ours = ours_min(rows)
    out = [f"#### {name}", "",
           "| contender | min | median | ns/item | GB/s | speed-up (contender_min / romp_fast_min) |",
           "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["min"]):
        star = "*" if r["extrapolated"] else ""
        ns = f"{r['min'] * 1e9 / r['B']:.0f}" if r["B"] else "n/a"
        gbs = ""
        if r["bytes"] and r["timed_B"]:
            gbs = f"{r['bytes'] / (r['min'] * r['timed_B'] / r['B']) / 1e9:.2f}"
        if r["contender"] == OURS:
            ratio = "1 (ours)"
        elif r["contender"] == FLOOR:
            ratio = f"memory floor; romp_fast takes {fmt_ratio(ours / r['min'])} its time" if ours else "floor"
        else:
            ratio = fmt_ratio(r["min"] / ours) if ours else "n/a"
        out.append(f"| {r['contender']}{star} | {fmt_time(r['min'])}{star} | "
                   f"{fmt_time(r['median'])}{star} | {ns} | {gbs} | {ratio} |")
    if any(r["extrapolated"] for r in rows):
        sub = {r["timed_B"] for r in rows if r["extrapolated"]}
        out.append("")
        out.append(f"\\* timed on the first {', '.join(map(str, sorted(sub)))} samples, "
                   "scaled linearly to B (per-sample loop).")
    out.append("")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", nargs="+", help="file(s) written by pytest --benchmark-json")
    ap.add_argument("--summary-only", action="store_true", help="only the one-line-per-case table")
    ap.add_argument("--no-summary", action="store_true", help="only the per-group tables")
    args = ap.parse_args(argv)
    merged: dict[str, list[dict]] = {}
    data = None
    for path in args.json:
        with open(path) as f:
            d = json.load(f)
        data = data or d
        merged.update(rows_of(d.get("benchmarks", [])))
    groups = sorted(merged.items(), key=group_key)
    if not groups:
        print(f"{', '.join(args.json)}: no timed benchmarks (run with --benchmark-disable?)",
              file=sys.stderr)
        return 1
    lines = ["### Benchmark report", ""]
    lines += machine_lines(data.get("machine_info", {}), data.get("commit_info", {}),
                           data.get("datetime"))
    lines += ["- Speed-up = contender_min / romp_fast_min in the same run: >1 means romp_fast is "
              "faster. ns/item: per sample (PA-MPJPE) or per problem (assignment). `*`: Python loop "
              "timed on a subset, scaled to B.", ""]
    if not args.no_summary:
        lines += summary_table(groups) + [""]
    if not args.summary_only:
        for name, rows in groups:
            lines += group_table(name, rows)
    print("\n".join(lines).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
