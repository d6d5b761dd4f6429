"""The scaling shape's PNG: wall time and peak RSS against rows, one line per database/tool.

    python bench/rivetbench/plot.py SERIES.json OUT.png

``SERIES.json`` is ``{"title": ..., "series": {label: [[rows, wall_s, rss_mb], ...]}}``
(:func:`rivetbench.report.scaling_series`). Only the standard library at module level, and
nothing from the harness: matplotlib is imported by :func:`draw`, with the Agg backend, so
the script runs under any interpreter that has matplotlib (the harness's own, or a separate
virtualenv: see ``bench/README.md``).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

MISSING = (
    "matplotlib is not installed, so no plot was drawn. Either install it into the "
    "interpreter that runs the harness (`.venv/bin/pip install -e '.[bench]'`; note that "
    "numpy comes with it and pyarrow then imports numpy at every Rivet start), or into a "
    "separate virtualenv the harness uses for the plot alone: "
    "`python3 -m venv bench/.venv-plot && bench/.venv-plot/bin/pip install matplotlib`; "
    "then draw it from the saved report: "
    "`.venv/bin/python bench/run.py --render REPORT.json --plot OUT.png`."
)


def rows_label(rows: float) -> str:
    """``1_000_000`` -> ``1M``, ``50_000`` -> ``50k``."""
    for unit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if rows >= unit:
            return f"{rows / unit:g}{suffix}"
    return f"{rows:g}"


def _minor_label(value: float, _position: object) -> str:
    """Plain numbers on a log axis' minor ticks, only at 2, 3 and 5 times a power of ten."""
    if value <= 0:
        return ""
    return f"{value:g}" if round(value / 10 ** math.floor(math.log10(value))) in (2, 3, 5) \
        else ""


def draw(series: dict[str, list[list[Any]]], path: Path, title: str) -> None:
    """Two panels, rows on a log axis: wall seconds (log) and peak RSS MB (linear)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, (wall_ax, rss_ax) = plt.subplots(1, 2, figsize=(12, 4.8))
    for label, points in series.items():
        wall = [(p[0], p[1]) for p in points if p[1] is not None]
        rss = [(p[0], p[2]) for p in points if p[2] is not None]
        if wall:
            wall_ax.plot(*zip(*wall, strict=True), marker="o", label=label)
        if rss:
            rss_ax.plot(*zip(*rss, strict=True), marker="o", label=label)
    wall_ax.set(xscale="log", yscale="log", xlabel="rows", ylabel="wall s (median)",
                title="wall time vs rows")
    rss_ax.set(xscale="log", xlabel="rows", ylabel="peak RSS MB (median)",
               title="peak RSS vs rows")
    rss_ax.set_ylim(bottom=0)
    sizes = sorted({p[0] for points in series.values() for p in points})
    wall_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    wall_ax.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
    for ax in (wall_ax, rss_ax):
        ax.set_xticks(sizes, [rows_label(n) for n in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    data = json.loads(Path(args[0]).read_text())
    try:
        draw(data["series"], Path(args[1]), data.get("title", "Rivet scaling"))
    except ImportError:
        print(MISSING, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
