"""How a NAS-Bench-201 search evolved (--space nb201), from its history.json:
`alphas_normal.png`, the op weights of the cell's 6 edges over the epochs; `collapse.png`,
the signs of collapse as for the DARTS space; `nb201.png`, the table's validation accuracy
of every epoch's derived cell per data set (records with the table's "nb201" scores),
beside (with the table installed) the all-skip cell DARTS is known to collapse to and the
table's best cell, so the drift is visible."""

from pathlib import Path

import numpy as np

from darts_paddle.nb201 import table
from darts_paddle.nb201.arch import EDGES, NODES
from darts_paddle.viz.evolution import (_epoch_axes, _markers, alpha_series, collapse_series,
                                        has_collapse_signals, history_primitives, plot_collapse)

COLORS = {"cifar10": "tab:blue", "cifar100": "tab:orange", "imagenet": "tab:green"}


def alphas_figure(history):
    """One plot per edge (a row per node, its inputs across), one line per op."""
    from matplotlib.figure import Figure

    series, primitives = alpha_series(history, "normal"), history_primitives(history)
    epochs = [record["epoch"] for record in history]
    rows = NODES - 1
    fig = Figure(figsize=(3.0 * rows, 2.3 * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, rows, sharex=True, sharey=True, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for e, (i, j) in enumerate(EDGES):
        ax = axes[j - 1, i]
        ax.set_axis_on()
        for o, op in enumerate(primitives):
            ax.plot(epochs, series[:, e, o], label=op, marker=_markers(epochs))
        ax.set_title(f"node {i} → node {j}", fontsize=10)
        ax.grid(alpha=0.3)
    for j in range(rows):
        axes[j, 0].set_ylabel("softmax(α)")
        axes[-1, j].set_xlabel("epoch")
    _epoch_axes(axes)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    axes[0, rows - 1].set_axis_off()
    axes[0, rows - 1].legend(handles, labels, loc="center", fontsize=10, frameon=False)
    fig.suptitle("NAS-Bench-201 cell: softmax(α) per edge over the epochs")
    return fig


def scores_figure(history):
    """The table's accuracy of each epoch's cell, one line per data set."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    marker = _markers(history)
    for dataset, color in COLORS.items():
        epochs, values = collapse_series(history, "nb201", dataset)
        ax.plot(epochs, values, marker=marker, color=color, label=dataset)
        if table.available():
            best = max(np.mean(row["val_acc"]) for row in table.rows(dataset).values())
            ax.axhline(best, color=color, linestyle=":", linewidth=1)
            ax.axhline(table.lookup(("skip_connect",) * len(EDGES), dataset).mean, color=color,
                       linestyle="--", linewidth=1)
    if table.available():
        ax.plot([], [], color="gray", linestyle=":", label="the table's best cell")
        ax.plot([], [], color="gray", linestyle="--", label="all skip_connect (collapse)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy % (table mean)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _epoch_axes([ax])
    fig.suptitle("the derived cell in NAS-Bench-201's table")
    return fig


def render_nb201_evolution(history, out_dir):
    """Write alphas_normal.png, collapse.png (records with the signs of collapse) and
    nb201.png (records with the table's scores); return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "alphas_normal.png"]
    alphas_figure(history).savefig(paths[0], dpi=90)
    if has_collapse_signals(history):
        paths.append(plot_collapse(history, out_dir / "collapse.png"))
    if any("nb201" in record for record in history):
        paths.append(out_dir / "nb201.png")
        scores_figure(history).savefig(paths[-1], dpi=90)
    return paths
