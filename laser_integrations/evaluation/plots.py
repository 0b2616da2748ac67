"""Charts for ``laser eval``: a bar chart comparing runs and the inference-scaling curve over K (matplotlib Agg)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .run import EvalResult, averages


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        msg = "Plots need matplotlib; install it with pip: `pip install laser-integrations[eval]`."
        raise ImportError(msg) from e
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | os.PathLike) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def bar_chart(results: Sequence[EvalResult], path: str | os.PathLike, metric: str = "ndcg@10") -> Path:
    """One bar per run label (grouped by dataset when there are several, plus their average); returns ``path``.

    With a single dataset the bars are horizontal, one row per run in the given order, so that a long list of runs
    stays readable (a legend of twenty colours is not)."""
    plt = _pyplot()
    labels = list(dict.fromkeys(r.label for r in results))
    datasets = list(dict.fromkeys(r.dataset for r in results))
    if len(datasets) == 1:
        return _ranking_chart(results, path, metric)
    value = {(r.label, r.dataset): r.metrics[metric] for r in results}
    groups = datasets + (["average"] if len(datasets) > 1 else [])
    means = averages(results)
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(max(6.5, 1.2 * len(groups) * max(1, len(labels)) ** 0.5 + 4), 4))
    for i, label in enumerate(labels):
        heights = [value.get((label, g), float("nan")) if g != "average" else means[label][metric] for g in groups]
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(groups))]
        bars = ax.bar(xs, heights, width, label=label)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
    ax.set_xticks(
        range(len(groups)), groups, rotation=30 if len(groups) > 3 else 0, ha="right" if len(groups) > 3 else "center"
    )
    ax.set_ylabel(metric)
    ax.set_ylim(0, max(1e-6, max((h for h in value.values()), default=1.0)) * 1.15)
    ax.set_title(f"{metric} by model")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside the axes: never over a bar
    return _save(plt, fig, path)


def _ranking_chart(results: Sequence[EvalResult], path: str | os.PathLike, metric: str) -> Path:
    plt = _pyplot()
    value = {r.label: r.metrics[metric] for r in results}  # one dataset: the label is the run
    labels = list(value)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.32 * len(labels)))
    bars = ax.barh(range(len(labels)), [value[label] for label in labels], color="tab:blue")
    ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()  # first run on top
    ax.set_xlabel(metric)
    ax.set_xlim(0, max(1e-6, max(value.values())) * 1.12)
    ax.set_title(f"{metric} on {results[0].dataset}")
    ax.grid(axis="x", alpha=0.3)
    return _save(plt, fig, path)


def scaling_plot(results: Sequence[EvalResult], path: str | os.PathLike, metric: str = "ndcg@10") -> Path:
    """``metric`` (averaged over datasets) against the number of thinking steps K, one line per model and query
    mode; models without K (baselines) are drawn as dashed horizontal lines. Returns ``path``."""
    plt = _pyplot()
    means = averages(results)
    curves: dict[str, list[tuple[int, float]]] = {}
    flat: dict[str, float] = {}
    for r in {r.label: r for r in results}.values():
        name = r.model if r.query_mode == "query" else f"{r.model} [{r.query_mode}]"
        if r.num_thinking_steps is None:
            flat[name] = means[r.label][metric]
        else:
            curves.setdefault(name, []).append((r.num_thinking_steps, means[r.label][metric]))
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for name, points in curves.items():
        points.sort()
        ax.plot([k for k, _ in points], [v for _, v in points], marker="o", label=name)
    for name, v in flat.items():
        ax.axhline(v, linestyle="--", linewidth=1, color="gray")
        ax.annotate(name, (0.01, v), xycoords=("axes fraction", "data"), fontsize=7, va="bottom")
    ks = sorted({k for points in curves.values() for k, _ in points})
    if ks:
        ax.set_xticks(ks)
    ax.set_xlabel("thinking steps K at inference")
    n_datasets = len({r.dataset for r in results})
    ax.set_ylabel(metric if n_datasets == 1 else f"{metric} (mean of {n_datasets} datasets)")
    ax.set_title(f"Inference scaling: {metric} vs K")
    if curves:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)
