"""Cell graphs drawn with graphviz.

Each cell becomes a left-to-right graph: the two cell inputs c_{k-2}, c_{k-1}, the
intermediate nodes 0..steps-1, and the output c_{k}; every op is an edge labelled with its
name, and only the states in the concat list feed c_{k}.

A single cell is laid out by `dot`.  Cells that are shown one after another (the frames of a
search's evolution) share one `FixedLayout`: dot lays out every edge any of them has, and
`pinned_cell_graph` draws each cell at those positions with `neato -n2`, which places
nothing itself, so the nodes stay where they are from frame to frame.
"""

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import NamedTuple

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

# Edge labels are most of a cell's width, so the gaps between ranks are kept small: the
# picture stays wide enough to read when shrunk to a page's width.
# ordering='in' keeps the nodes 0, 1, 2, ... top to bottom (edges into c_{k} in order).
_GRAPH_ATTR = dict(rankdir='LR', ordering='in', ranksep='0.3', nodesep='0.25', dpi='96',
                   fontname='helvetica', fontsize='20', labelloc='t')
_NODE_ATTR = dict(style='filled', shape='rect', align='center', fontname='helvetica',
                  fontsize='20', height='0.5', width='0.5', penwidth='2')
_EDGE_ATTR = dict(fontname='helvetica', fontsize='18', penwidth='1.5')

# Points (1/72 inch) around a pinned cell, and the height of its title above it.
_MARGIN = 8
_TITLE_HEIGHT = 36

_NOT_FOUND = "graphviz 'dot' not found: install it with `apt-get install graphviz` (Debian/Ubuntu)"


def op_colour(op):
    return next((colour for prefix, colour in _OP_COLOURS if op.startswith(prefix)), 'black')


def op_label(op):
    """An op's name on two lines, 'sep_conv' over '3x3': edge labels set a cell's width."""
    return r'\n'.join(op.rsplit('_', 1))  # graphviz's escape for a centred line break


def require_dot():
    """graphviz the Python package only writes DOT text; the `dot` program does the layout."""
    if shutil.which('dot') is None:
        raise UserError(_NOT_FOUND)


def _state_name(j):
    return INPUT_NAMES[j] if j < 2 else str(j - 2)


def _node_names(steps):
    return [*INPUT_NAMES, *map(str, range(steps)), OUTPUT_NAME]


def _cell_edges(ops, concat):
    """The cell's number of intermediate nodes and its [(key, op)] in drawing order, op None
    for the edges into c_{k}.

    key = (tail, head, n), the n-th edge between those states: two ops of one node may
    read the same state (NASNet, AmoebaNet), and they stay two edges.
    """
    ops, concat = validate_cell('cell', ops, concat)
    pairs = [((_state_name(j), str(position // 2)), op) for position, (op, j) in enumerate(ops)]
    pairs += [((_state_name(j), OUTPUT_NAME), None) for j in concat]
    seen = Counter()
    edges = []
    for pair, op in pairs:
        edges.append(((*pair, seen[pair]), op))
        seen[pair] += 1
    return len(ops) // 2, edges


def _edge_id(key):
    tail, head, n = key
    return f'{tail}->{head}#{n}'


def _digraph(label, **graph_attr):
    import graphviz  # only the drawing needs it

    return graphviz.Digraph(format='png', graph_attr=dict(_GRAPH_ATTR, label=label or '',
                                                          **graph_attr),
                            node_attr=_NODE_ATTR, edge_attr=_EDGE_ATTR)


def _add_nodes(g, steps, positions=None):
    colours = [_INPUT_COLOUR] * 2 + [_NODE_COLOUR] * steps + [_OUTPUT_COLOUR]
    for name, colour in zip(_node_names(steps), colours):
        g.node(name, fillcolor=colour, **({'pos': positions[name]} if positions else {}))


def _add_edge(g, key, op, **attrs):
    tail, head, _ = key
    if op is not None:
        colour = op_colour(op)
        attrs.update(label=op_label(op), color=colour, fontcolor=colour)
    g.edge(tail, head, **attrs)


def cell_graph(ops, concat, label=None):
    """graphviz.Digraph of one cell for `dot`; `ops` flat [(op, input)] pairs, two per node."""
    steps, edges = _cell_edges(ops, concat)
    g = _digraph(label)
    _add_nodes(g, steps)
    for key, op in edges:
        _add_edge(g, key, op)
    return g


# --------------------------------------------------------------------------- fixed layout

class FixedLayout(NamedTuple):
    """Where dot put the nodes and edges of a set of cells, in points (graphviz's
    coordinates, y up)."""
    label: str
    steps: int
    bb: str  # 'x0,y0,x1,y1'
    nodes: dict  # {name: 'x,y'}
    edges: dict  # {edge id: {'pos': spline, 'lp': label position (not for edges into c_{k})}}


def fixed_layout(cells, label=None):
    """One layout for cells of one type drawn one after another, `cells` their (ops, concat).

    dot lays out every edge that any of them has, each labelled with the longest op it
    carries so that any of its labels fits where dot left room for one.
    """
    longest, steps = {}, 0
    for ops, concat in cells:
        cell_steps, edges = _cell_edges(ops, concat)
        steps = max(steps, cell_steps)
        for key, op in edges:
            longest[key] = max(op or '', longest.get(key, ''), key=lambda o: (len(o), o))
    rank = {name: i for i, name in enumerate(_node_names(steps))}
    # No ordering='in' here: with most of a cell's possible edges present, keeping every
    # node's in-edges in order makes dot loop them around each other.
    g = _digraph(None, ordering='')  # the title comes with pinned_cell_graph
    _add_nodes(g, steps)
    # node by node, then the output, as a single cell is drawn
    for key in sorted(longest, key=lambda k: (rank[k[1]], rank[k[0]], k[2])):
        _add_edge(g, key, longest[key] or None, id=_edge_id(key))
    drawn = json.loads(_pipe(g, 'json'))
    return FixedLayout(label=label, steps=steps, bb=drawn['bb'],
                       nodes={o['name']: o['pos'] for o in drawn['objects']},
                       edges={e['id']: {'pos': e['pos'], **({'lp': e['lp']} if 'lp' in e else {})}
                              for e in drawn['edges']})


def pinned_cell_graph(layout, ops, concat):
    """graphviz.Digraph of one cell at the positions of `layout`, for `neato -n2`.

    neato -n2 keeps the given node positions and edge splines; notranslate keeps its
    coordinates those of the layout, and the viewport fixes the picture to the layout's
    box (plus the title above it), whichever edges this cell has.
    """
    x0, y0, x1, y1 = map(float, layout.bb.split(','))
    top = y1 + _MARGIN + _TITLE_HEIGHT
    viewport = (f'{x1 - x0 + 2 * _MARGIN},{top - y0 + _MARGIN},1,'
                f'{(x0 + x1) / 2},{(y0 - _MARGIN + top) / 2}')
    g = _digraph(None, splines='true', notranslate='true', viewport=viewport)
    # a node, not the graph label, which neato would place by what this cell draws
    g.node('title', label=layout.label or '', shape='plaintext', style='',
           pos=f'{(x0 + x1) / 2},{top - _TITLE_HEIGHT / 2}')
    _add_nodes(g, layout.steps, layout.nodes)
    for key, op in _cell_edges(ops, concat)[1]:
        placed = layout.edges.get(_edge_id(key))
        if placed is None:
            raise ValueError(f'edge {_edge_id(key)} is not in the layout: make the layout '
                             'from every cell drawn with it')
        _add_edge(g, key, op, **placed)
    return g


def _pipe(graph, fmt, pinned=False):
    import graphviz

    require_dot()
    try:
        if pinned:  # neato -n2 keeps the given node positions and edge splines
            return graph.pipe(format=fmt, engine='neato', neato_no_op=2)
        return graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise UserError(_NOT_FOUND) from None


def render_pinned_png(layout, ops, concat):
    """PNG bytes of one cell at the positions of `layout`, for frames that never touch the
    disk; every cell drawn with one layout gives a picture of the same size."""
    return _pipe(pinned_cell_graph(layout, ops, concat), 'png', pinned=True)


def render_cell(ops, concat, fmt='png', label=None):
    """The picture of one cell in format `fmt`, as bytes (VisualDL's images never touch the
    disk)."""
    return _pipe(cell_graph(ops, concat, label), fmt)


def genotype_pictures(genotype):
    """{cell: a function drawing that cell of `genotype` as PNG bytes} (VisualDL's images)."""
    return {cell: (lambda cell=cell: render_cell(getattr(genotype, cell),
                                                 getattr(genotype, f'{cell}_concat'),
                                                 label=f'{cell} cell'))
            for cell in ('normal', 'reduce')}


def draw_cell(ops, concat, path, fmt='pdf', label=None):
    """Write one cell picture to exactly `path` (no side files) and return the path."""
    path = Path(path)
    path.write_bytes(render_cell(ops, concat, fmt, label))
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
