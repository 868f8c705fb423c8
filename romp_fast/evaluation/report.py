"""The result of scoring a benchmark, and its writers (terminal table, JSON, CSV, PNG curve).

Every benchmark evaluator's file-level entry point returns a :class:`BenchmarkResult`;
``python -m romp_fast.evaluate`` prints it and writes it. Files are written atomically.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from romp_fast.body.io import atomic_write


@dataclass
class BenchmarkResult:
    """What a benchmark evaluator reports.

    Attributes:
        benchmark: registry name ("3dpw", "agora", ...).
        summary: headline numbers, ``name -> float`` (units in the name: ``MPJPE_mm``, ``F1``).
        tables: named row lists written as ``<name>.csv`` (per-sequence results, per-subset ...);
            each row is a flat dict, all rows of a table share keys.
        curves: named curves ``{"x": [...], "y": [...], "xlabel": str, "ylabel": str}`` drawn as
            ``<name>.png`` (the 3DPW challenge PCK curve).
        details: anything else JSON-serialisable (per-alpha HOTA arrays, per-group breakdowns).
        notes: the conventions used (matching rule, joint set, penalties, units), printed under the
            table and stored in the JSON.
    """
    benchmark: str
    summary: dict[str, float]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "summary": _plain(self.summary), "tables": _plain(self.tables),
                "curves": _plain(self.curves), "details": _plain(self.details), "notes": list(self.notes)}


def _plain(x):
    """numpy / torch scalars and arrays -> Python numbers and lists; NaN/inf -> None (valid JSON)."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}" if abs(v) < 1e4 else f"{v:.6g}"
    return str(v)


def format_table(rows: list[dict[str, Any]], title: str | None = None) -> str:
    """A plain aligned text table of ``rows`` (dicts sharing keys)."""
    if not rows:
        return (title + "\n" if title else "") + "(no rows)"
    keys = list(rows[0])
    cells = [keys] + [[_fmt(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(keys))]
    lines = ["  ".join(c[i].rjust(widths[i]) for i in range(len(keys))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(([title] if title else []) + lines)


def format_result(result: BenchmarkResult, max_rows: int = 40) -> str:
    """The terminal view: summary as a two-column table, then each table (first ``max_rows`` rows)."""
    parts = [format_table([{"metric": k, "value": v} for k, v in result.summary.items()],
                          f"== {result.benchmark} ==")]
    for name, rows in result.tables.items():
        shown = rows[:max_rows]
        more = f"\n... {len(rows) - max_rows} more rows in {name}.csv" if len(rows) > max_rows else ""
        parts.append(format_table(shown, f"-- {name} --") + more)
    if result.notes:
        parts.append("\n".join("note: " + n for n in result.notes))
    return "\n\n".join(parts)


def write_result(result: BenchmarkResult, out_dir, stem: str | None = None) -> list[Path]:
    """Write ``<stem>.json`` (everything), ``<table>.csv`` per table and ``<curve>.png`` per curve.

    Returns the written paths. Each file is written atomically (temp file + rename).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or result.benchmark
    written = []
    p = out / f"{stem}.json"
    text = json.dumps(result.to_json(), indent=2, allow_nan=False)
    atomic_write(p, lambda fh: fh.write(text.encode()))
    written.append(p)
    for name, rows in result.tables.items():
        buf = io.StringIO()
        if rows:
            w = csv.DictWriter(buf, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(_plain(rows))
        p = out / f"{name}.csv"
        atomic_write(p, lambda fh, b=buf.getvalue(): fh.write(b.encode()))
        written.append(p)
    for name, curve in result.curves.items():
        p = out / f"{name}.png"
        atomic_write(p, lambda fh, c=curve: plot_curve(c).save(fh, format="PNG"))
        written.append(p)
    return written


def plot_curve(curve: dict[str, Any], size=(640, 480)):
    """Draw a y(x) line chart with axes, ticks and labels using Pillow (no matplotlib needed)."""
    from PIL import Image, ImageDraw

    xs = [float(v) for v in curve["x"]]
    ys = [float(v) for v in curve["y"]]
    if len(xs) != len(ys) or not xs:
        raise ValueError(f"curve needs equal, non-empty x and y, got {len(xs)} and {len(ys)} points")
    W, H = size
    L, R, T, B = 60, 20, 30, 50
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    x0, x1 = min(xs), max(xs)
    y0, y1 = float(curve.get("ymin", min(0.0, min(ys)))), float(curve.get("ymax", max(1.0, max(ys))))
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1

    def px(x, y):
        return L + (x - x0) / (x1 - x0) * (W - L - R), H - B - (y - y0) / (y1 - y0) * (H - T - B)

    d.rectangle([L, T, W - R, H - B], outline="black")
    for i in range(6):
        xv, yv = x0 + (x1 - x0) * i / 5, y0 + (y1 - y0) * i / 5
        gx, _ = px(xv, y0)
        _, gy = px(x0, yv)
        d.line([gx, H - B, gx, H - B + 4], fill="black")
        d.text((gx - 10, H - B + 6), f"{xv:.3g}", fill="black")
        d.line([L - 4, gy, L, gy], fill="black")
        d.text((5, gy - 6), f"{yv:.3g}", fill="black")
    d.line([px(x, y) for x, y in zip(xs, ys)], fill=(31, 119, 180), width=2)
    d.text((W // 2 - 40, H - 20), str(curve.get("xlabel", "x")), fill="black")
    d.text((L, 8), str(curve.get("ylabel", "y")) + (f" - {curve['title']}" if curve.get("title") else ""),
           fill="black")
    return img
