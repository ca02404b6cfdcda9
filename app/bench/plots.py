"""PNG plots (matplotlib Agg): score against token cost, switch time and VRAM with the Pareto front; sweep summary."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend must be chosen first

from app.bench.stats import pareto_front

AXES = (("token_cost", "token cost per job"), ("switch_ms", "est. switch ms per job"), ("peak_vram_gb", "peak VRAM GB"))
MARKERS = "osD^v<>PX*"


def _front_2d(points: list[dict[str, Any]], cost: str) -> list[dict[str, Any]]:
    pts = [(float(p["score"] or 0.0), -float(p[cost] or 0.0)) for p in points]
    front = [points[i] for i in pareto_front(pts)]
    return sorted(front, key=lambda p: float(p[cost] or 0.0))


def plot_pareto(points: list[dict[str, Any]], frontier: Collection[int], path: Path) -> None:
    """One panel per cost axis. Every (benchmark, mode) point is drawn; the line is the 2-D front over the
    'all' benchmark points; points on the full multi-objective frontier (report.json) get a black edge."""
    fig, axes = plt.subplots(1, len(AXES), figsize=(5 * len(AXES), 4.2))
    benches = list(dict.fromkeys(p["benchmark"] for p in points))
    modes = list(dict.fromkeys(p["mode"] for p in points))
    colors = plt.get_cmap("tab10")
    for ax, (cost, label) in zip(axes, AXES, strict=True):
        for i, p in enumerate(points):
            if p["score"] is None:
                continue
            ax.scatter(
                float(p[cost] or 0.0),
                float(p["score"]),
                color=colors(modes.index(p["mode"]) % 10),
                marker=MARKERS[benches.index(p["benchmark"]) % len(MARKERS)],
                edgecolors="black" if i in frontier else "none",
                s=60 if p["benchmark"] == "all" else 30,
                label=f"{p['mode']} / {p['benchmark']}",
            )
        overall = [p for p in points if p["benchmark"] == "all" and p["score"] is not None]
        front = _front_2d(overall, cost)
        if front:
            ax.plot([float(p[cost] or 0.0) for p in front], [float(p["score"]) for p in front], "k--", lw=1)
        ax.set_xlabel(label)
        ax.set_ylabel("avg score")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(5, max(1, len(labels))), fontsize=7)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_meta(rows: list[dict[str, Any]], path: Path) -> None:
    """Sweep summary: mean score (bars) and mean token cost (dots) per (benchmark, mode)."""
    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / max(1, len(modes))
    for k, mode in enumerate(modes):
        xs = [b + k * width for b in range(len(benches))]
        cell = {r["benchmark"]: r for r in rows if r["mode"] == mode}
        ax1.bar(xs, [float(cell.get(b, {}).get("mean_score") or 0.0) for b in benches], width, label=mode)
        ax2.bar(xs, [float(cell.get(b, {}).get("mean_switch_ms") or 0.0) for b in benches], width, label=mode)
    for ax, title in ((ax1, "mean score"), (ax2, "mean est. switch ms per job")):
        ax.set_xticks([b + 0.4 - width / 2 for b in range(len(benches))], benches, rotation=15)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    ax1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
