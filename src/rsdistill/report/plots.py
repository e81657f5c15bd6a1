"""Figures of a sweep (matplotlib, PNG, Agg backend so no display is needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.cm  # noqa: E402
import matplotlib.colors  # noqa: E402
import matplotlib.lines  # noqa: E402
import matplotlib.text  # noqa: E402
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rsdistill.io import atomic_write_bytes  # noqa: E402


def _save(fig, path: Path) -> Path:
    import io

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _beta_title(beta: str) -> str:
    if beta == "0":
        return "no nuclear norm (β = 0)"
    return "nuclear norm, β = α" if beta == "alpha" else f"nuclear norm, β = {beta}"


def alpha_curve(aggregate: list[dict], metric: str, label: str, path: Path,
                teacher: dict | None, baseline: dict | None) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for beta in dict.fromkeys(r["beta"] for r in aggregate):
        rows = sorted((r for r in aggregate if r["beta"] == beta), key=lambda r: r["alpha"])
        ax.errorbar([r["alpha"] for r in rows], [100 * r[f"{metric}_mean"] for r in rows],
                    yerr=[100 * r[f"{metric}_std"] for r in rows], marker="o", capsize=3,
                    label=f"student, {_beta_title(beta)}")
    if teacher is not None:
        ax.axhline(100 * teacher[metric], color="black", linestyle="--",
                   label=f"teacher ({teacher['model']})")
    if baseline is not None:
        ax.axhline(100 * baseline[f"{metric}_mean"], color="gray", linestyle=":",
                   label="student without distillation (α = 0)")
    ax.set_xlabel("α (weight of the soft, teacher-matching loss)")
    ax.set_ylabel(f"test {label} (%)")
    seeds = max(r["seeds"] for r in aggregate)
    ax.set_title(f"α vs {label} (mean ± std over {seeds} seed{'s' if seeds > 1 else ''})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def confusion(matrix: list[list[int]], classes: list[str], title: str, path: Path) -> Path:
    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    size = max(5.0, 0.32 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    return _save(fig, path)


def training_curves(runs: list[tuple[float, str, list[float]]], path: Path) -> Path:
    """Validation accuracy per epoch of each (α, β, accuracies from epoch 1 on, as
    ``curves.val_curve`` reads them): the colour is α (one colour map, so a dozen lines
    never share a colour), the line style is β."""
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    alphas = sorted({a for a, _, _ in runs})
    norm = matplotlib.colors.Normalize(min(alphas), max(alphas) if len(alphas) > 1 else min(alphas) + 1)
    cmap = matplotlib.colormaps["viridis"]
    betas = list(dict.fromkeys(b for _, b, _ in runs))
    styles = dict(zip(betas, ("-", "--", ":", "-.")))
    for alpha, beta, accuracies in runs:
        ax.plot(range(1, len(accuracies) + 1), [100 * a for a in accuracies],
                color=cmap(norm(alpha)), linestyle=styles.get(beta, "-"), linewidth=1.2)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="α",
                 ticks=alphas if len(alphas) <= 11 else None)
    ax.legend(handles=[matplotlib.lines.Line2D([], [], color="gray", linestyle=styles.get(b, "-"),
                                               label=_beta_title(b)) for b in betas],
              fontsize=8, loc="lower right")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("training curves (seed 0)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _plain_log_ticks(ax, values: list[float]) -> None:
    """Log-scale x ticks at the data's own values (2 significant digits, plain numbers),
    thinned so that neighbours are at least 15 % apart; no "3×10⁻¹" labels."""
    ticks: list[float] = []
    for v in sorted(float(f"{v:.2g}") for v in values if v > 0):
        if not ticks or v > 1.15 * ticks[-1]:
            ticks.append(v)
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    lo, hi = min(ticks + values), max(ticks + values)
    ax.set_xlim(lo / 1.25, hi * 1.6)  # room for a label right of the last point


def _label_points(ax, points: list[tuple[str, float, float]], fontsize: int = 7) -> None:
    """Labels right of (x, y) points, from the top down, each moved down where it would
    overlap one already placed (measured as drawn), with a thin leader line when moved."""
    fig = ax.figure
    fig.tight_layout()  # the layout _save keeps, so the measured boxes hold
    renderer = fig.canvas.get_renderer()
    step = fontsize * fig.dpi / 72 / 2
    placed = []
    style = {"fontsize": fontsize, "va": "center", "textcoords": "offset pixels",
             "bbox": {"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8}}
    for label, x, y in sorted(points, key=lambda p: -p[2]):
        ann = ax.annotate(label, (x, y), xytext=(8, 0), **style)
        dy = 0.0
        for _ in range(200):
            ann.update_positions(renderer)
            box = matplotlib.text.Text.get_window_extent(ann, renderer).expanded(1.0, 1.15)
            if not any(box.overlaps(other) for other in placed):
                break
            dy -= step
            ann.xyann = (8, dy)
        placed.append(box)
        if dy:
            ann.remove()
            ax.annotate(label, (x, y), xytext=(8, dy), **style,
                        arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5})


def accuracy_vs_latency(points: list[tuple[str, float, float]], path: Path) -> Path:
    """``points``: (label, batch-1 latency ms, accuracy in [0, 1])."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, latency, acc in points:
        ax.scatter(latency, 100 * acc, s=40)
    ax.set_xscale("log")
    _plain_log_ticks(ax, [p[1] for p in points])
    ax.set_xlabel("batch-1 latency, median (ms, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy vs latency")
    ax.grid(alpha=0.3, which="both")
    _label_points(ax, [(label, latency, 100 * acc) for label, latency, acc in points])
    return _save(fig, path)


def method_accuracy(methods: list[dict], path: Path, teacher: dict | None = None) -> Path:
    """Mean test accuracy per method with ±1 std error bars (a method comparison)."""
    n = len(methods)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * n + 2), 4.2))
    means = [100 * m["accuracy_mean"] for m in methods]
    stds = [100 * m["accuracy_std"] for m in methods]
    # The scratch baseline in grey, so the distilled students stand out against it.
    colours = ["tab:gray" if m["method"] == "scratch" else "tab:blue" for m in methods]
    ax.bar(range(n), means, yerr=stds, capsize=4, color=colours)
    ax.set_xticks(range(n), [m["method"] for m in methods])
    if teacher is not None:
        ax.axhline(100 * teacher["accuracy"], color="black", linestyle="--",
                   label=f"teacher ({teacher['model']})")
        ax.legend(fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    seeds = max(m["seeds"] for m in methods)
    ax.set_title(f"accuracy per method (mean ± std over {seeds} seed{'s' if seeds > 1 else ''})")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def pareto(rows: list[dict], teacher: dict | None, path: Path,
           budgets: list[float] | None = None) -> Path:
    """Accuracy (mean ± std) vs batch-1 latency, scratch and distilled, the front joined;
    students started from ImageNet weights hollow; latency budgets as dotted lines, the
    axis labelled in plain milliseconds."""
    fig, ax = plt.subplots(figsize=(8.0, 5.2))
    for kind, marker, colour in (("scratch", "s", "tab:gray"), ("distilled", "o", "tab:blue")):
        for pretrained in (False, True):
            rs = [r for r in rows if r["kind"] == kind and bool(r.get("pretrained")) == pretrained]
            if not rs:
                continue
            ax.errorbar([r["latency_ms"] for r in rs], [100 * r["accuracy_mean"] for r in rs],
                        yerr=[100 * r["accuracy_std"] for r in rs], fmt=marker, capsize=3,
                        color=colour, mfc="white" if pretrained else colour, alpha=0.9,
                        label=f"{kind}{', ImageNet start' if pretrained else ''}")
    front = sorted((r for r in rows if r.get("on_front")), key=lambda r: r["latency_ms"])
    if front:
        ax.step([r["latency_ms"] for r in front], [100 * r["accuracy_mean"] for r in front],
                where="post", color="black", linewidth=1, label="Pareto front")
    if teacher and "accuracy" in teacher:
        ax.plot([teacher["latency_ms"]], [100 * teacher["accuracy"]], marker="*", markersize=12,
                color="black", linestyle="none", label=f"teacher {teacher.get('model', '')}")
    for b in budgets or []:
        ax.axvline(b, color="tab:red", linestyle=":", linewidth=0.8, alpha=0.6)
    ax.set_xscale("log")
    # Room on both sides, so the budgets around the students' latencies are labelled.
    xs = [r["latency_ms"] for r in rows] + list(budgets or [])
    if teacher:
        xs.append(teacher["latency_ms"])
    lo, hi = min(xs) / 1.4, max(xs) * 1.4
    ticks = sorted({*(budgets or []), 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500})
    ax.set_xticks([t for t in ticks if lo <= t <= hi])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlim(lo, hi)
    ax.set_xlabel("batch-1 latency, ONNX Runtime (ms, log scale; dotted: latency budgets)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    # One label per model and size (its scratch and distilled points share the latency),
    # beside the higher of the two.
    labels: dict[str, tuple[float, float]] = {}
    for r in rows:
        key, y = f"{r['model'].removeprefix('timm:')}@{r['image_size']}", 100 * r["accuracy_mean"]
        if key not in labels or y > labels[key][1]:
            labels[key] = (r["latency_ms"], y)
    _label_points(ax, [(k, x, y) for k, (x, y) in labels.items()], fontsize=6)
    return _save(fig, path)


def epoch_panels(panels: list[tuple[str, list[tuple[str, dict]]]], path: Path) -> Path:
    """Small multiples of validation accuracy per epoch: one panel per setting, each
    series its mean with a ±1 std band; the first series (scratch) in grey."""
    n = len(panels)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False,
                             sharey=True)
    colours = ["tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for ax, (title, series) in zip(axes.flat, panels):
        for k, (label, b) in enumerate(series):
            mean, std = np.asarray(b["mean"]) * 100, np.asarray(b["std"]) * 100
            colour = colours[k % len(colours)]
            # Markers where there are few epochs, so a short run still shows its points.
            ax.plot(b["epochs"], mean, color=colour, linewidth=1.2,
                    marker="o" if len(mean) <= 30 else None, markersize=3,
                    label=f"{label} ({b['seeds']} seed{'s' if b['seeds'] != 1 else ''})")
            if b["seeds"] > 1:
                ax.fill_between(b["epochs"], np.clip(mean - std, 0, 100),
                                np.clip(mean + std, 0, 100), color=colour, alpha=0.2,
                                linewidth=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, max(len(b["epochs"]) for _, b in series) + 0.5)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes[:, 0]:
        ax.set_ylabel("validation accuracy (%)")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return _save(fig, path)
