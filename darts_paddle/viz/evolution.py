"""How a search evolved, drawn from the history.json that a search run writes every epoch.

Two kinds of picture: `networks.gif`, one frame per epoch with the reduction cell above the
normal cell of the genotype derived at that epoch (each cell type keeps one layout over the
frames, so that only its edges change), and `alphas_<cell>.png`, the softmax(alpha) of every
edge over the epochs, one small plot per edge and one line per op. Records of a DAAS or PC-DARTS search also
carry edge weights, drawn as `betas_<cell>.png`: one plot per node that has them, one line per
incoming edge.  Records that carry the signs of collapse (search/collapse.py) give
`collapse.png`: lambda_max, the skip_connect counts, the parameter-free share and the op
weights' entropy over the epochs.

Record keys read here besides the genotype: `epoch`, `valid_acc` (optional),
`softmax_alphas_<cell>` ([edges][ops]), `primitives` (optional: the op names of those columns,
PRIMITIVES when absent; DAAS has no 'none') and `softmax_betas_<cell>` (optional, DAAS:
softmax(min(beta, 1)) of nodes 1..steps-1, PC-DARTS: softmax(beta) of nodes 0..steps-1;
node k's list over its k + 2 inputs), and for
collapse.png `hessian_eigenvalue` (null when not estimated), `skip_connect`,
`parameter_free`, `alpha_entropy` ({cell: number}), `skip_connect_uncapped` ({"normal":
number}, with --max_skip) and `early_stop` (in the record DARTS-ES stopped after).
"""

import io
import json
from pathlib import Path

import numpy as np

from darts_paddle.errors import UserError
from darts_paddle.genotype import CELLS, PRIMITIVES, genotype_from_json, steps_from_edges
from darts_paddle.nb201.arch import EDGES as NB201_EDGES, is_cell_json
from darts_paddle.storage.history import HISTORY
from darts_paddle.viz.cells import INPUT_NAMES, fixed_layout, render_pinned_png

FRAME_CELLS = ('reduce', 'normal')  # top to bottom in a GIF frame
_CELL_TITLES = {'normal': 'normal cell', 'reduce': 'reduction cell'}
_CAPTION_HEIGHT = 44
_GAP = 24
_MAX_WIDTH = 1920  # wider GIFs only get shrunk by the viewer, and weigh more


# --------------------------------------------------------------------------- reading

def load_history(save_dir):
    """The list of epoch records of a search directory, checked enough to draw from."""
    path = Path(save_dir) / HISTORY
    if not path.is_file():
        raise UserError(f"{save_dir} has no {HISTORY}; pass the directory of a search run "
                        "(search-EXP-DATE/, written by train_search.py) or a genotype")
    try:
        history = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not readable JSON ({exc}); rerun or resume the search "
                        "to rewrite it") from None
    if not isinstance(history, list) or not history:
        raise UserError(f"{path} holds no epoch records; let the search finish at least one epoch")
    cells = history_cells(history)
    for i, record in enumerate(history):
        missing = [k for k in ('epoch', 'genotype', *(f'softmax_alphas_{c}' for c in cells))
                   if not isinstance(record, dict) or k not in record]
        if missing:
            raise UserError(f"{path}, record {i}: lacks {', '.join(missing)}; "
                            "expected the records that train_search.py writes")
    _check_betas_everywhere(history, path)
    return history


def is_nb201(history):
    """Is this the history of a NAS-Bench-201 search (--space nb201)?"""
    return isinstance(history[0], dict) and is_cell_json(history[0].get('genotype'))


def history_cells(history):
    """The cell types whose op weights the records hold: NAS-Bench-201's one cell (its
    alphas are the normal cell's), or DARTS's two."""
    return ('normal',) if is_nb201(history) else CELLS


def _check_betas_everywhere(history, path):
    # A history mixing DAAS and plain records cannot be drawn as one set of series.
    keys = [f'softmax_betas_{c}' for c in history_cells(history)]
    if not any(k in record for record in history for k in keys):
        return
    for i, record in enumerate(history):
        missing = [k for k in keys if k not in record]
        if missing:
            raise UserError(f"{path}, record {i}: lacks {', '.join(missing)} while other records "
                            "carry edge weights; one search directory must hold one search")


def has_betas(history):
    """True for the records of a DAAS or PC-DARTS search (load_history made sure all or none
    carry them)."""
    return 'softmax_betas_normal' in history[0]


def history_primitives(history):
    """Op names of the softmax_alphas columns: the records' "primitives", PRIMITIVES if absent."""
    first = history[0].get('primitives', PRIMITIVES)
    for i, record in enumerate(history):
        prims = record.get('primitives', PRIMITIVES)
        if not (isinstance(prims, list) and prims and all(isinstance(op, str) for op in prims)):
            raise UserError(f'"primitives" in {HISTORY}, record {i}, must be a list of op names '
                            f"such as {PRIMITIVES[1:3]}, got {prims!r}; fix the record, or drop "
                            "the key for the 8 ops of PRIMITIVES")
        if prims != first:
            raise UserError(f'"primitives" in {HISTORY}, record {i}, {prims} differ from those of '
                            f"record 0, {first}; one search directory must hold one search")
    return list(first)


def alpha_series(history, cell):
    """softmax(alpha) of one cell over the epochs: array [epochs, edges, ops].

    The ops are those of `history_primitives`, in that order.
    """
    primitives = history_primitives(history)
    shape = None
    try:
        series = np.asarray([r[f'softmax_alphas_{cell}'] for r in history], dtype=np.float64)
        shape = series.shape[1:]
    except (TypeError, ValueError):  # ragged rows, or not numbers
        pass
    if shape is None or len(shape) != 2 or shape[1] != len(primitives):
        got = 'ragged or non-numeric rows' if shape is None else f'shape {shape}'
        source = '"primitives" of the records' if 'primitives' in history[0] else 'PRIMITIVES'
        raise UserError(f"softmax_alphas_{cell} in {HISTORY} must be [edges x {len(primitives)}] "
                        f"in every record, got {got}; one column per op of {source} "
                        f"({', '.join(primitives)})")
    try:
        if is_nb201(history):
            if shape[0] != len(NB201_EDGES):
                raise ValueError(f"a NAS-Bench-201 cell has {len(NB201_EDGES)} edges, not "
                                 f"{shape[0]}")
        else:
            steps_from_edges(shape[0])
    except ValueError as exc:
        raise UserError(f"softmax_alphas_{cell} in {HISTORY}: {exc}") from None
    return series


def beta_series(history, cell):
    """Edge weights of one cell over the epochs, one array [epochs, inputs] per node that has
    them: nodes 1..steps-1 (DAAS: node 0 keeps both its inputs) or 0..steps-1 (PC-DARTS).

    Node k has k + 2 inputs.
    """
    steps = steps_from_edges(alpha_series(history, cell).shape[1])
    key = f'softmax_betas_{cell}'
    first = 0 if len(history[0][key]) == steps else 1
    sizes = [node + 2 for node in range(first, steps)]
    expected = (f"{len(sizes)} lists (nodes {first}..{steps - 1}) of "
                f"{', '.join(map(str, sizes))} edge weights")
    per_node = [[] for _ in sizes]
    for i, record in enumerate(history):
        betas = record[key]
        try:
            rows = [np.asarray(b, dtype=np.float64) for b in betas]
        except (TypeError, ValueError):  # not a list of number lists
            rows = None
        if rows is None or [r.shape for r in rows] != [(n,) for n in sizes]:
            got = 'non-numeric entries' if rows is None else f'lengths {[r.size for r in rows]}'
            raise UserError(f"{key} in {HISTORY}, record {i}: expected {expected}, got {got}; "
                            "one list per node, as record 0 has")
        for node_rows, row in zip(per_node, rows):
            node_rows.append(row)
    return [np.stack(rows) for rows in per_node]


def input_name(j):
    """Name of input state j of a node: c_{k-2}, c_{k-1}, node 0, node 1, ..."""
    return INPUT_NAMES[j] if j < 2 else f'node {j - 2}'


def edge_titles(steps):
    """Edge names in row order: node by node, each node's inputs c_{k-2}, c_{k-1}, node 0, ..."""
    return [f'{input_name(j)} → node {node}' for node in range(steps) for j in range(node + 2)]


# --------------------------------------------------------------------------- GIF

def _caption(record):
    acc = record.get('valid_acc')
    text = f"epoch {record['epoch']}"
    return text if acc is None else f'{text}  valid acc {100 * acc:.1f}%'


def _font(size):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable since Pillow 10.1
    except TypeError:
        return ImageFont.load_default()


def cell_images(history):
    """Per epoch, the pictures of its cells in `FRAME_CELLS` order as RGB Pillow images.

    Each cell type has one layout for the whole search, so a node keeps its place from
    frame to frame and only the edges change.
    """
    from PIL import Image

    genotypes = [genotype_from_json(record) for record in history]
    cells = [{c: (getattr(g, c), getattr(g, c + '_concat')) for c in FRAME_CELLS}
             for g in genotypes]
    layouts = {c: fixed_layout(dict.fromkeys(_hashable(*frame[c]) for frame in cells),
                           _CELL_TITLES[c])
               for c in FRAME_CELLS}
    cache = {}  # genotypes repeat a lot once a search settles

    def image(cell, ops, concat):
        key = (cell, *_hashable(ops, concat))
        if key not in cache:
            png = render_pinned_png(layouts[cell], ops, concat)
            cache[key] = Image.open(io.BytesIO(png)).convert('RGB')
        return cache[key]

    return [tuple(image(c, *frame[c]) for c in FRAME_CELLS) for frame in cells]


def _hashable(ops, concat):
    return tuple(map(tuple, ops)), tuple(concat)


def compose_frames(cells, captions):
    """One canvas size for all frames (GIF frames must agree): the caption, then the cells
    one above the other, each centred in its band."""
    from PIL import Image, ImageDraw

    bands = [max(stack[k].height for stack in cells) for k in range(len(cells[0]))]
    width = max(im.width for stack in cells for im in stack) + 2 * _GAP
    size = (width, _CAPTION_HEIGHT + sum(bands) + len(bands) * _GAP)
    font = _font(28)
    frames = []
    for stack, caption in zip(cells, captions):
        frame = Image.new('RGB', size, 'white')
        top = _CAPTION_HEIGHT
        for im, band in zip(stack, bands):
            frame.paste(im, ((width - im.width) // 2, top + (band - im.height) // 2))
            top += band + _GAP
        ImageDraw.Draw(frame).text((width // 2, _CAPTION_HEIGHT // 2), caption,
                                   fill='black', font=font, anchor='mm')
        frames.append(frame)
    if size[0] > _MAX_WIDTH:
        small = (_MAX_WIDTH, round(size[1] * _MAX_WIDTH / size[0]))
        frames = [f.resize(small, Image.Resampling.LANCZOS) for f in frames]
    return frames


def write_gif(frames, path, duration_ms=800):
    # loop=0: repeat for ever, so the viewer need not restart it.
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return Path(path)


# --------------------------------------------------------------------------- alpha plots

def _markers(epochs):
    return '.' if len(epochs) < 20 else None


def _epoch_axes(axes):
    """Whole epochs on x, and plain numbers on both axes of every plot.

    MaxNLocator(integer=True) alone falls back to fractional ticks when fewer than two
    whole numbers are in view (a 1-epoch run): min_n_ticks=1 keeps the one epoch.  Early
    in a search the weights move in the 5th or 6th digit, and matplotlib would print an
    offset such as "1e-6+1.25e-1" over the plot, on top of its title; the tick labels
    carry those digits instead.
    """
    from matplotlib.ticker import MaxNLocator

    for ax in np.ravel(axes):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.ticklabel_format(style='plain', useOffset=False)


def alphas_figure(history, cell):
    """Grid of small plots, one row per node, one plot per edge, one line per op."""
    from matplotlib.figure import Figure  # no pyplot: the Agg canvas, no global backend state

    series = alpha_series(history, cell)
    primitives = history_primitives(history)
    # DAAS records have no 'none' column and weight ops by softmax(f(alpha))
    label = 'softmax(α)' if 'none' in primitives else 'softmax(f(α))'
    epochs = [record['epoch'] for record in history]
    steps = steps_from_edges(series.shape[1])
    titles = edge_titles(steps)
    cols = steps + 1  # the last node has the most inputs
    fig = Figure(figsize=(3.0 * cols, 2.3 * steps + 0.8), layout='constrained')
    axes = fig.subplots(steps, cols, sharex=True, sharey=True, squeeze=False)
    edge = 0
    for node in range(steps):
        for j in range(cols):
            ax = axes[node, j]
            if j >= node + 2:
                ax.set_axis_off()
                continue
            for o, op in enumerate(primitives):
                ax.plot(epochs, series[:, edge, o], label=op, marker=_markers(epochs))
            ax.set_title(titles[edge], fontsize=10)
            ax.grid(alpha=0.3)
            edge += 1
        axes[node, 0].set_ylabel(label)
    for ax in axes[-1]:
        ax.set_xlabel('epoch')
    # no ylim at 0: early in a search the weights move by a few thousandths around 1/8
    _epoch_axes(axes)
    # The legend sits in the empty corner of the first row, where it hides no line.
    handles, labels = axes[0, 0].get_legend_handles_labels()
    axes[0, cols - 1].legend(handles, labels, loc='center', fontsize=10, frameon=False)
    fig.suptitle(f'{_CELL_TITLES[cell]}: {label} per edge over the epochs')
    return fig


def plot_alphas(history, cell, path):
    """Write `alphas_figure` as a PNG (or any format matplotlib infers from `path`)."""
    alphas_figure(history, cell).savefig(path, dpi=90)
    return Path(path)


# --------------------------------------------------------------------------- beta plots

def betas_figure(history, cell):
    """One plot per node with edge weights (DAAS: nodes 1, 2, 3; PC-DARTS: 0 to 3), one line
    per incoming edge."""
    from matplotlib.figure import Figure

    series = beta_series(history, cell)
    epochs = [record['epoch'] for record in history]
    fig = Figure(figsize=(3.6 * len(series), 3.2), layout='constrained')
    # no shared y: the weights of 3, 4, 5 inputs sit around 1/3, 1/4, 1/5
    axes = fig.subplots(1, len(series), sharex=True, squeeze=False)[0]
    first = steps_from_edges(alpha_series(history, cell).shape[1]) - len(series)
    for k, (ax, values) in enumerate(zip(axes, series)):
        node = first + k
        for j in range(values.shape[1]):
            ax.plot(epochs, values[:, j], label=input_name(j), marker=_markers(epochs))
        ax.set_title(f'node {node} ({node + 2} inputs)', fontsize=10)
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel('softmax(β)' if first == 0 else 'softmax(min(β, 1))')  # PC-DARTS, DAAS
    _epoch_axes(axes)
    fig.suptitle(f'{_CELL_TITLES[cell]}: edge weights per node over the epochs')
    return fig


def plot_betas(history, cell, path):
    """Write `betas_figure` as a PNG (or any format matplotlib infers from `path`)."""
    betas_figure(history, cell).savefig(path, dpi=90)
    return Path(path)


# --------------------------------------------------------------------------- collapse signals

COLLAPSE_KEYS = ('skip_connect', 'parameter_free', 'alpha_entropy')


def has_collapse_signals(history):
    """True when the records carry the signs of collapse (searches from before them do not)."""
    return any(COLLAPSE_KEYS[0] in record for record in history)


def collapse_series(history, key, cell=None):
    """(epochs, values) of one signal over the records that carry it: `key` of each record,
    or its entry for `cell`; null values are left out."""
    epochs, values = [], []
    for i, record in enumerate(history):
        value = record.get(key)
        if isinstance(value, dict) and cell is not None:
            value = value.get(cell)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            where = key if cell is None else f'{key}.{cell}'
            raise UserError(f"{where} in {HISTORY}, record {i}, must be a number, got {value!r}; "
                            "expected the records that train_search.py writes")
        epochs.append(record['epoch'])
        values.append(float(value))
    return epochs, values


def collapse_figure(history):
    """Four plots over the epochs: lambda_max (with DARTS-ES's decision), the skip_connect
    ops of each derived cell (before the --max_skip cap, dashed), the share of its
    parameter-free ops, and the mean entropy of its edges' op weights."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 6.4), layout='constrained')
    axes = fig.subplots(2, 2, sharex=True)
    eigen, skips, free, entropy = axes.ravel()
    marker = _markers(history)
    epochs, values = collapse_series(history, 'hessian_eigenvalue')
    if values:
        eigen.plot(epochs, values, marker=marker, color='black', label='λ_max')
    else:
        eigen.text(0.5, 0.5, 'not estimated (--eigen_batches 0)', ha='center', va='center',
                   transform=eigen.transAxes)
    stop = next((record['early_stop'] for record in history if 'early_stop' in record), None)
    if stop:
        eigen.axvline(stop['kept_epoch'], color='tab:green', linestyle='--',
                      label=f"kept: epoch {stop['kept_epoch']}")
        eigen.axvline(stop['epoch'], color='tab:red', linestyle=':',
                      label=f"DARTS-ES stop (ratio {stop['ratio']:.2f})")
    if values or stop:
        eigen.legend(fontsize=8)
    eigen.set_title('λ_max, the largest eigenvalue of ∇²_α L_val', fontsize=10)
    for cell, color in zip(history_cells(history), ('tab:blue', 'tab:orange')):
        name = _CELL_TITLES[cell]
        skips.plot(*collapse_series(history, 'skip_connect', cell), color=color, label=name,
                   marker=marker)
        uncapped = collapse_series(history, 'skip_connect_uncapped', cell)
        if uncapped[1]:
            skips.plot(*uncapped, color=color, linestyle='--', label=f'{name}, before --max_skip')
        free.plot(*collapse_series(history, 'parameter_free', cell), color=color, label=name,
                  marker=marker)
        entropy.plot(*collapse_series(history, 'alpha_entropy', cell), color=color, label=name,
                     marker=marker)
    skips.set_title('skip_connect ops of the derived cell', fontsize=10)
    skips.yaxis.set_major_locator(MaxNLocator(integer=True))
    free.set_title('share of parameter-free ops (none, pools, skip)', fontsize=10)
    entropy.set_title('entropy of the op weights, mean over edges (nats)', fontsize=10)
    for ax in (skips, free, entropy):
        ax.legend(fontsize=8)
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel('epoch')
    _epoch_axes(axes)
    fig.suptitle('signs of collapse over the epochs')
    return fig


def plot_collapse(history, path):
    """Write `collapse_figure` as a PNG (or any format matplotlib infers from `path`)."""
    collapse_figure(history).savefig(path, dpi=90)
    return Path(path)


# --------------------------------------------------------------------------- entry point

def render_evolution(save_dir, out_dir=None, duration_ms=800):
    """Write networks.gif, alphas_normal.png, alphas_reduce.png, for records with edge
    weights (DAAS, PC-DARTS) betas_normal.png, betas_reduce.png, and for records with the
    signs of collapse collapse.png; return their paths in that order."""
    history = load_history(save_dir)
    betas, collapse = has_betas(history), has_collapse_signals(history)
    for cell in CELLS:  # fail on bad records before the slow drawing starts
        alpha_series(history, cell)
        if betas:
            beta_series(history, cell)
        for key in COLLAPSE_KEYS if collapse else ():
            collapse_series(history, key, cell)
    if collapse:
        collapse_series(history, 'hessian_eigenvalue')
    out_dir = Path(out_dir or save_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = compose_frames(cell_images(history), [_caption(r) for r in history])
    paths = [write_gif(frames, out_dir / 'networks.gif', duration_ms)]
    paths += [plot_alphas(history, cell, out_dir / f'alphas_{cell}.png') for cell in CELLS]
    if betas:
        paths += [plot_betas(history, cell, out_dir / f'betas_{cell}.png') for cell in CELLS]
    if collapse:
        paths.append(plot_collapse(history, out_dir / 'collapse.png'))
    return paths
