"""PNG plots (matplotlib Agg): score against token cost, switch time and VRAM with the Pareto front; sweep grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend must be chosen first
from matplotlib.figure import Figure

from app.bench.stats import pareto_front

AXES = (
    ("token_cost", "token cost per job (cost_per_token × tokens / token_scale)"),
    ("switch_ms", "estimated switch time per job (ms)"),
    ("peak_vram_gb", "mean peak resident VRAM per job (GB)"),
)
MARKERS = "osD^v<>PX*"
DODGE = 0.025  # fraction of the x range between points that would otherwise sit on top of each other


def _front_2d(points: list[dict[str, Any]], cost: str) -> list[dict[str, Any]]:
    pts = [(float(p["score"] or 0.0), -float(p[cost] or 0.0)) for p in points]
    front = [points[i] for i in pareto_front(pts)]
    return sorted(front, key=lambda p: float(p[cost] or 0.0))


def dodge(xs: list[float], ys: list[float], span: float) -> list[float]:
    """x offsets that spread points sharing (almost) the same position symmetrically, so none hides another."""
    step = max(span, 1e-9) * DODGE
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        groups.setdefault((round(x / step), round(y / 0.02)), []).append(i)
    out = list(xs)
    for members in groups.values():
        for k, i in enumerate(members):
            out[i] = xs[i] + (k - (len(members) - 1) / 2) * step
    return out


def plot_pareto(report: dict[str, Any], path: Path) -> None:
    fig = pareto_figure(report)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pareto_figure(report: dict[str, Any]) -> Figure:
    """One panel per cost axis: every (benchmark, mode) point with its 95% interval, the 2-D front over the 'all'
    points (dashed), points on the full frontier edged black, budget breakers ringed red, the budget G marked."""
    indexed = [(i, p) for i, p in enumerate(report["pareto_points"]) if p["score"] is not None]
    points = [p for _, p in indexed]
    frontier = {k for k, (i, _) in enumerate(indexed) if i in set(report.get("pareto_points_frontier", []))}
    budget = float(report["config"]["gpu_vram_gb"])
    fig, axes = plt.subplots(1, len(AXES), figsize=(6 * len(AXES), 4.8))
    benches = list(dict.fromkeys(p["benchmark"] for p in points))
    modes = list(dict.fromkeys(p["mode"] for p in points))
    colors = plt.get_cmap("tab10")
    for ax, (cost, label) in zip(axes, AXES, strict=True):
        xs = [float(p[cost] or 0.0) for p in points]
        ys = [float(p["score"]) for p in points]
        span = (max([*xs, budget if cost == "peak_vram_gb" else 0.0]) - min(xs)) if xs else 1.0
        placed = dodge(xs, ys, span or 1.0)
        flagged = 0
        for i, p in enumerate(points):
            color = colors(modes.index(p["mode"]) % 10)
            broke = _broke(p)
            ax.errorbar(placed[i], ys[i], yerr=float(p.get("ci95") or 0.0), fmt="none", ecolor=color, alpha=0.5, lw=1)
            ax.scatter(
                placed[i],
                ys[i],
                color=color,
                marker=MARKERS[benches.index(p["benchmark"]) % len(MARKERS)],
                edgecolors="black" if i in frontier else "none",
                s=70 if p["benchmark"] == "all" else 40,
                label=f"{p['mode']} / {p['benchmark']}",
                zorder=3,
            )
            if broke:
                flagged += 1
                ax.scatter(placed[i], ys[i], s=260, facecolors="none", edgecolors="red", lw=1.5, zorder=4)
                offset = (6, 6 - 14 * (flagged % 3))  # neighbouring labels alternate heights instead of overlapping
                ax.annotate("over G", (placed[i], ys[i]), textcoords="offset points", xytext=offset, color="red",
                            fontsize=7)  # fmt: skip
        front = _front_2d([p for p in points if p["benchmark"] == "all"], cost)
        if front:
            ax.plot([float(p[cost] or 0.0) for p in front], [float(p["score"]) for p in front], "k--", lw=1)
        if cost == "peak_vram_gb":
            ax.axvline(budget, color="red", ls=":", lw=1.2, label=f"budget G = {budget:g} GB")
        ax.set_xlabel(label)
        ax.set_ylabel("mean score (0–1), bars: 95% CI")
        ax.grid(alpha=0.3)
    fig.suptitle(_title(report, budget))
    handles, labels = axes[-1].get_legend_handles_labels()
    seen = dict(zip(labels, handles, strict=True))
    fig.legend(list(seen.values()), list(seen), loc="lower center", ncol=min(5, max(1, len(seen))), fontsize=7)
    fig.tight_layout(rect=(0, 0.14, 1, 0.95))
    return fig


def _row(entry: dict[str, Any]) -> tuple[float, int, float]:
    """A grid row: (G, horizon, τ); τ is -1 outside a tau_sweep."""
    tau = entry.get("router_tau")
    return float(entry["gpu_vram_gb"]), int(entry["horizon_depth"]), -1.0 if tau is None else float(tau)


def _title(report: dict[str, Any], budget: float) -> str:
    cfg = report["config"]
    return (
        f"Score vs cost per routing mode — {' + '.join(report['benchmarks'])}, G = {budget:g} GB, "
        f"λ_token {cfg['lambda_token']:g}, λ_switch {cfg['lambda_switch']:g}, seed {cfg['seed']}"
    )


def plot_meta(entries: list[dict[str, Any]], path: Path) -> None:
    fig = meta_figure(entries)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def meta_figure(entries: list[dict[str, Any]]) -> Figure:
    """The sweep's grid: one heatmap per (benchmark, mode), λ_switch across, G (and horizon) down, each cell the
    mean score with its switch time; cells of runs that broke the budget are marked."""
    cells = sorted({(e["benchmark_name"], e["routing_mode"]) for e in entries})
    lambdas = sorted({float(e["lambda_switch"]) for e in entries})
    rows = sorted({_row(e) for e in entries})
    ncol = min(3, len(cells))
    nrow = (len(cells) + ncol - 1) // ncol
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(6.0 * ncol, 1.6 + 0.9 * len(rows) * nrow), squeeze=False, layout="constrained"
    )
    image = None
    for k, (bench, mode) in enumerate(cells):
        ax = axes[k // ncol][k % ncol]
        grid = [[float("nan")] * len(lambdas) for _ in rows]
        for e in entries:
            if (e["benchmark_name"], e["routing_mode"]) != (bench, mode) or e["mean_score"] is None:
                continue
            r = rows.index(_row(e))
            c = lambdas.index(float(e["lambda_switch"]))
            grid[r][c] = float(e["mean_score"])
            text = f"{e['mean_score']:.2f}\n{float(e.get('mean_switch_cost_est') or 0):.0f} ms"
            broke = _broke(e)
            ax.text(c, r, text + ("\nover G" if broke else ""), ha="center", va="center", fontsize=7,
                    color="red" if broke else "black")  # fmt: skip
        image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto", alpha=0.8)
        ax.set_xticks(range(len(lambdas)), [f"{x:g}" for x in lambdas])
        ax.set_yticks(range(len(rows)), [f"G {g:g} GB, h {h}" + (f", τ {t:g}" if t >= 0 else "") for g, h, t in rows])
        ax.set_xlabel("λ_switch")
        ax.set_title(f"{bench} / {mode}", fontsize=9)
    for k in range(len(cells), nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="mean score (0–1)")
    fig.suptitle("Sweep grid: mean score (and est. switch ms per job) per configuration")
    return fig


def _broke(point: dict[str, Any]) -> bool:
    """The run used, or planned, more than G (the GPU scheduler stops the plan from running that way)."""
    return any(float(point.get(k) or 0.0) > 0 for k in ("vram_violation_rate", "planned_vram_violation_rate"))
