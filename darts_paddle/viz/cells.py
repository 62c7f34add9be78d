"""Cell graphs drawn with graphviz.

Each cell becomes a left-to-right graph: the two cell inputs c_{k-2}, c_{k-1}, the
intermediate nodes 0..steps-1, and the output c_{k}; every op is an edge labelled with its
name, and only the states in the concat list feed c_{k}. `render_cell_png` returns the
picture as bytes so that evolution animations can be assembled in memory.
"""

import shutil
from pathlib import Path

from darts_paddle.errors import UserError
from darts_paddle.genotype import validate_cell

INPUT_NAMES = ('c_{k-2}', 'c_{k-1}')
OUTPUT_NAME = 'c_{k}'

_INPUT_COLOUR = 'darkseagreen2'
_NODE_COLOUR = 'lightblue'
_OUTPUT_COLOUR = 'palegoldenrod'

# One colour per op family, shared by the edge and its label, so that a label is easy to
# match with its edge where several edges cross.
_OP_COLOURS = (('sep_conv', 'royalblue3'), ('dil_conv', 'darkorchid'), ('conv', 'darkslateblue'),
               ('max_pool', 'firebrick3'), ('avg_pool', 'darkorange3'), ('skip', 'forestgreen'))


def op_colour(op):
    return next((colour for prefix, colour in _OP_COLOURS if op.startswith(prefix)), 'black')


def require_dot():
    """graphviz the Python package only writes DOT text; the `dot` program does the layout."""
    if shutil.which('dot') is None:
        raise UserError("graphviz 'dot' not found: install it with `apt-get install graphviz` "
                        "(Debian/Ubuntu)")


def _state_name(j):
    return INPUT_NAMES[j] if j < 2 else str(j - 2)


def cell_graph(ops, concat, label=None):
    """graphviz.Digraph of one cell; `ops` flat [(op, input)] pairs, two per node."""
    import graphviz  # only the drawing needs it

    ops, concat = validate_cell('cell', ops, concat)
    g = graphviz.Digraph(
        format='png',
        # ordering='in' keeps the nodes 0, 1, 2, ... top to bottom (edges into c_{k} in order).
        graph_attr=dict(rankdir='LR', ordering='in', ranksep='1.0', dpi='96',
                        fontname='helvetica', fontsize='20', label=label or '', labelloc='t'),
        node_attr=dict(style='filled', shape='rect', align='center', fontname='helvetica',
                       fontsize='20', height='0.5', width='0.5', penwidth='2'),
        edge_attr=dict(fontname='helvetica', fontsize='18', penwidth='1.5'),
    )
    for name in INPUT_NAMES:
        g.node(name, fillcolor=_INPUT_COLOUR)
    steps = len(ops) // 2
    for node in range(steps):
        g.node(str(node), fillcolor=_NODE_COLOUR)
    for position, (op, j) in enumerate(ops):
        colour = op_colour(op)
        g.edge(_state_name(j), str(position // 2), label=op, color=colour, fontcolor=colour)
    g.node(OUTPUT_NAME, fillcolor=_OUTPUT_COLOUR)
    for j in concat:
        g.edge(_state_name(j), OUTPUT_NAME)
    return g


def _pipe(graph, fmt):
    import graphviz

    require_dot()
    try:
        return graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise UserError("graphviz 'dot' not found: install it with `apt-get install graphviz` "
                        "(Debian/Ubuntu)") from None


def render_cell_png(ops, concat, label=None):
    """PNG bytes of one cell, for frames that never touch the disk."""
    return _pipe(cell_graph(ops, concat, label), 'png')


def draw_cell(ops, concat, path, fmt='pdf', label=None):
    """Write one cell picture to exactly `path` (no side files) and return the path."""
    data = _pipe(cell_graph(ops, concat, label), fmt)
    path = Path(path)
    path.write_bytes(data)
    return path


def draw_genotype(genotype, out_dir, name, formats=('pdf', 'png')):
    """Write <name>_normal.<fmt> and <name>_reduce.<fmt> into out_dir; return the paths."""
    require_dot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for cell in ('normal', 'reduce'):
        ops, concat = getattr(genotype, cell), getattr(genotype, cell + '_concat')
        for fmt in formats:
            paths.append(draw_cell(ops, concat, out_dir / f'{name}_{cell}.{fmt}', fmt,
                                   label=f'{name} {cell} cell'))
    return paths

