"""Small program-building helpers that the methods share, among them the per-node work on
edge weights beta (DAAS, PC-DARTS): one beta per input edge of each node that has them."""

import functools

import numpy as np

from ...paddle_static import paddle


def const(value, dtype):
    """A tensor constant: a Python float in an op would be stored as a float32 attribute."""
    return paddle.full([1], value, dtype)


def table(values, dtype):
    """A constant array in the program's float type (float64 in the gradient tests)."""
    return paddle.assign(np.asarray(values, "float64" if dtype == paddle.float64 else "float32"))


def index(array):
    """A constant int64 index vector."""
    return paddle.assign(np.asarray(array, np.int64).reshape(-1))


def select(gate, when_on, when_off):
    """gate (a fed [1] of 0 or 1) ? when_on : when_off, exactly (no arithmetic blend)."""
    return paddle.where(paddle.expand(gate > 0.5, when_on.shape), when_on, when_off)


def stacked(arch, prefix, layout):
    """Every cell type's `<prefix>_<cell>` stacked along axis 0."""
    parts = [arch[f"{prefix}_{c}"] for c in layout.cells]
    return parts[0] if len(parts) == 1 else paddle.concat(parts)


def per_cell(rows, layout):
    """{cell: its rows} of every cell type's rows stacked."""
    if len(layout.cells) == 1:
        return {layout.cells[0]: rows}
    return dict(zip(layout.cells, paddle.split(rows, len(layout.cells))))


def entropy(p, axis=-1):
    """Entropy of each distribution along `axis`; padding entries (p = 0) add nothing."""
    tiny = paddle.full([1], 1e-30, p.dtype)
    return -paddle.sum(p * paddle.log(paddle.maximum(p, tiny)), axis=axis)


@functools.lru_cache(maxsize=None)
def node_tables(layout, nodes):
    """Index tables over every cell type's betas stacked (cell by cell, for each node in
    `nodes` one beta per input edge; methods.layout.Layout `layout`):
    index [cells * len(nodes), widest]: each node's betas, padded with the index one past
    the betas (a slot `by_node` appends);
    position [cells * edges]: where each edge's beta lands in that table flattened, or one
    past the table (a slot `to_edges` appends) for the edges of nodes without betas."""
    cells, edges = len(layout.cells), layout.edges
    width = max(layout.inputs[n] for n in nodes)
    n_betas = cells * sum(layout.inputs[n] for n in nodes)
    index, position = [], np.full(cells * edges, cells * len(nodes) * width)
    first_beta = 0
    for c in range(cells):
        for node in nodes:
            first_edge, n = c * edges + layout.first_edge(node), layout.inputs[node]
            position[first_edge:first_edge + n] = len(index) * width + np.arange(n)
            index.append(list(range(first_beta, first_beta + n)) + [n_betas] * (width - n))
            first_beta += n
    return np.array(index), position


def by_node(values, layout, nodes, pad):
    """Every cell's betas stacked -> [nodes, widest node]: one row per node, padded with
    `pad`."""
    rows, _ = node_tables(layout, nodes)
    padded = paddle.concat([values, paddle.full([1], pad, values.dtype)])
    return paddle.reshape(paddle.gather(padded, index(rows)), list(rows.shape))


def to_edges(table, layout, nodes, fill):
    """A [nodes, widest] table of per-node values -> [every cell's edges, 1]: each edge's
    value, `fill` on the edges of nodes without betas."""
    _, position = node_tables(layout, nodes)
    flat = paddle.concat([paddle.reshape(table, [-1]), paddle.full([1], fill, table.dtype)])
    return paddle.unsqueeze(paddle.gather(flat, index(position)), -1)
