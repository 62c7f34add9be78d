"""Genotypes: the discrete cell architectures that DARTS derives from its alphas.

A genotype lists, for the normal and the reduction cell, two ``(op, input)`` pairs per
intermediate node (flat, node by node) and the states concatenated into the cell output.
Input index 0 is c_{k-2}, 1 is c_{k-1}, and j >= 2 is intermediate node j - 2.

Genotypes travel as text (``Genotype(...)`` literals, parsed without eval), as JSON, or by
name (registry.py: the published ones in published.py, yours in the top-level
``genotypes.py``); `registry.resolve_arch` accepts all three.
Derivation is DARTS's top-2 parse, optionally preceded by DAAS's edge pruning on per-node
edge scores beta (`derive_cell(..., betas=...)`, `genotype_from_weights`), optionally with
P-DARTS's cap on the skip_connect ops of the normal cell (`max_skip`).
This module needs numpy only, never paddle.
"""

import ast
import difflib
import itertools
import json
from collections import namedtuple
from pathlib import Path

import numpy as np

from darts_paddle.errors import UserError
from darts_paddle.storage.atomic import write_atomic

Genotype = namedtuple('Genotype', 'normal normal_concat reduce reduce_concat')

STEPS = 4  # intermediate nodes of a cell
MULTIPLIER = 4  # the last nodes concatenated into a cell's output
CELLS = ('normal', 'reduce')  # the two cell types, each with its own alphas


def reduction_layers(layers):
    """The indices of the reduction cells in a stack of `layers` cells: at 1/3 and 2/3 of the
    depth, as the original networks (search and evaluation alike)."""
    return (layers // 3, 2 * layers // 3)


def fewest_layers(condition):
    """The smallest number of cells for which `condition(layers)` holds."""
    return next(layers for layers in itertools.count(1) if condition(layers))


def has_normal_cell(layers):
    return len(set(reduction_layers(layers))) < layers


def check_search_layers(layers):
    """A search needs a normal cell: without one alphas_normal never train, yet a normal
    cell (their initial values) would be derived and saved."""
    if not has_normal_cell(layers):
        raise UserError(f"--layers {layers} has no normal cell (the cells at 1/3 and 2/3 of the "
                        "depth are reduction cells, here all of them), so the normal cell's "
                        f"alphas would never train: search with --layers "
                        f"{fewest_layers(has_normal_cell)} or more")


PRIMITIVES = [
    'none',
    'max_pool_3x3',
    'avg_pool_3x3',
    'skip_connect',
    'sep_conv_3x3',
    'sep_conv_5x5',
    'dil_conv_3x3',
    'dil_conv_5x5',
]

# Ops a genotype may name: the searchable ones (never 'none': it would be a dead edge)
# plus the two that NASNet and AmoebaNet use.
KNOWN_OPS = [op for op in PRIMITIVES if op != 'none'] + ['sep_conv_7x7', 'conv_7x1_1x7']

_CELLS = (('normal', 'normal_concat'), ('reduce', 'reduce_concat'))

_EXPECTED_LITERAL = ("expected Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], "
                     "reduce=[...], reduce_concat=[2, 3, 4, 5])")


# --------------------------------------------------------------------------- validation

def _is_int(value):
    # bool is an int subclass, but True as an input index is surely a typo.
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_pair(item):
    return (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str))


def _flatten_ops(cell, ops):
    """Accept the flat spelling and the one nested per node; return the flat list."""
    if not isinstance(ops, (list, tuple)) or len(ops) == 0:
        raise UserError(f"{cell} cell: expected a non-empty list of (op, input) pairs, got {ops!r}")
    if _is_pair(ops[0]) or not isinstance(ops[0], (list, tuple)):
        return list(ops)  # flat; each item is checked by the caller
    flat = []
    for node, group in enumerate(ops):
        if _is_pair(group) or not isinstance(group, (list, tuple)):
            raise UserError(f"{cell} cell: mixes flat (op, input) pairs with per-node lists; "
                            "use one spelling: [('op', j), ...] or [[('op', j), ('op', k)], ...]")
        if len(group) != 2:
            raise UserError(f"{cell} cell, node {node}: has {len(group)} inputs; "
                            "every node takes exactly two (op, input) pairs")
        flat.extend(group)
    return flat


def suggestion(text, names):
    """The hint " (did you mean 'DARTS_V2'?)" for 'darts_v2' or 'DARTS_V3' among `names`,
    ignoring case; "" when nothing is close."""
    by_folded = {name.casefold(): name for name in names}
    close = difflib.get_close_matches(text.casefold(), list(by_folded), n=1)
    return f" (did you mean '{by_folded[close[0]]}'?)" if close else ""


def validate_cell(cell, ops, concat, known_ops=KNOWN_OPS):
    """Check one cell's ops and concat; return them as ([(str, int), ...], [int, ...]).

    `cell` only names the cell in error messages ('normal', 'reduce').
    """
    flat = _flatten_ops(cell, ops)
    if len(flat) % 2:
        raise UserError(f"{cell} cell: {len(flat)} (op, input) pairs is odd; "
                        "every node takes exactly two, so the list needs an even length")
    steps = len(flat) // 2
    pairs = []
    for position, item in enumerate(flat):
        node = position // 2
        if not _is_pair(item) or not _is_int(item[1]):
            raise UserError(f"{cell} cell, node {node}: {item!r} is not an (op name, input index) "
                            "pair like ('sep_conv_3x3', 0)")
        op, j = str(item[0]), int(item[1])
        if op not in known_ops:
            raise UserError(f"{cell} cell, node {node}: unknown op '{op}'"
                            f"{suggestion(op, known_ops)}; "
                            f"known ops: {', '.join(known_ops)}")
        if not 0 <= j < node + 2:
            raise UserError(f"{cell} cell, node {node}: input index {j} out of range; node {node} "
                            f"can read states 0..{node + 1} (0, 1 = cell inputs, j >= 2 = node j-2)")
        pairs.append((op, j))
    return pairs, _validate_concat(cell, concat, steps)


def _validate_concat(cell, concat, steps):
    def check(j):
        if not _is_int(j) or not 2 <= j < steps + 2:
            raise UserError(f"{cell}_concat: {j!r} is not an intermediate state; with {steps} nodes "
                            f"the concat indices lie in {list(range(2, steps + 2))}")

    if isinstance(concat, range):
        # its ends bound all its members: checked first, range(2, 3000000000) is never listed
        for j in (*concat[:1], *concat[-1:]):
            check(j)
        concat = list(concat)
    if not isinstance(concat, (list, tuple)) or len(concat) == 0:
        raise UserError(f"{cell}_concat: expected a non-empty list of state indices, got {concat!r}")
    for j in concat:
        check(j)
    if len(set(concat)) != len(concat):
        raise UserError(f"{cell}_concat: {list(concat)} repeats an index; list each state once")
    return [int(j) for j in concat]


def validate_genotype(g, known_ops=KNOWN_OPS):
    """Check a genotype and return it normalised: lists of (str, int) tuples, int concat lists."""
    if not (isinstance(g, tuple) and getattr(g, '_fields', None) == Genotype._fields):
        raise UserError(f"expected a Genotype with fields {', '.join(Genotype._fields)}, "
                        f"got {type(g).__name__}")
    fields = {}
    for cell, concat_name in _CELLS:
        ops, concat = validate_cell(cell, getattr(g, cell), getattr(g, concat_name), known_ops)
        fields[cell], fields[concat_name] = ops, concat
    return Genotype(**fields)


# --------------------------------------------------------------------------- derivation

def softmax(alpha):
    """Row-wise softmax; subtracting the row maximum keeps exp() from overflowing."""
    alpha = np.asarray(alpha, dtype=np.float64)
    shifted = np.exp(alpha - alpha.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def num_edges(steps):
    """Edges of a cell with `steps` nodes: node i has 2 + i inputs."""
    return sum(2 + i for i in range(steps))


def steps_from_edges(edges):
    for steps in range(1, edges + 1):
        if num_edges(steps) == edges:
            return steps
    raise ValueError(f"{edges} edges match no cell size (2, 5, 9, 14, 20, ... for 1, 2, 3, 4, 5 nodes)")


def _check_betas(betas, steps):
    """Per-node edge scores as a list of `steps` entries: None, or 2 + node scores."""
    if betas is None:
        return [None] * steps
    if len(betas) != steps:
        raise ValueError(f"betas has {len(betas)} entries for {steps} nodes; give one per node "
                         "(None for a node without edge scores)")
    checked = []
    for node, beta in enumerate(betas):
        if beta is not None:
            beta = np.asarray(beta, dtype=np.float64)
            if beta.shape != (node + 2,):
                raise ValueError(f"betas of node {node} have shape {beta.shape}; node {node} has "
                                 f"{node + 2} inputs, so expected {(node + 2,)}")
        checked.append(beta)
    return checked


def _candidate_edges(node, beta):
    """Inputs of `node` still in the running: all of them, or (DAAS) its 2 highest-beta ones.

    Dropping the lowest-beta edges before the op-strength parse is DAAS's discretization: the
    edge weights beta, not the op weights, decide which inputs a node keeps.  As the authors'
    _sift_beta (model_search.py): a stable ascending sort drops the first ones, so on a tie
    the higher input index stays.
    """
    if beta is None:
        return list(range(node + 2))
    return sorted(np.argsort(beta, kind='stable')[-2:].tolist())


def derive_cell(weights, steps=STEPS, primitives=PRIMITIVES, betas=None, max_skip=None):
    """Top-2 parse of one cell from its (already normalised) op weights, [edges, len(primitives)].

    'none' never wins: edges are ranked by, and ops picked from, the other ops only,
    because a 'none' edge carries nothing into the evaluation network.
    `betas` (optional): one entry per node, None or a 1-D array of the node's 2 + node edge
    scores; a node with scores first drops all but its 2 highest-scored inputs (DAAS), then
    the usual parse orders the two kept edges, strongest op first.
    `max_skip` (optional, P-DARTS): while the cell has more than `max_skip` skip_connect ops,
    the one of smallest weight loses skip_connect (it is parsed as if it were 'none') and
    the cell is parsed again: its edge brings its next strongest op, or gives way to
    another input of its node.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (num_edges(steps), len(primitives)):
        raise ValueError(f"weights of shape {weights.shape} do not fit {steps} nodes and "
                         f"{len(primitives)} ops: expected {(num_edges(steps), len(primitives))}")
    betas = _check_betas(betas, steps)
    barred = np.tile([op == 'none' for op in primitives], (len(weights), 1))
    while True:
        chosen = _parse(np.where(barred, -np.inf, weights), steps, betas)
        skips = [row for row, k, _ in chosen if primitives[k] == 'skip_connect']
        if max_skip is None or len(skips) <= max_skip:
            return [(primitives[k], j) for _, k, j in chosen]
        skip = primitives.index('skip_connect')
        barred[min(skips, key=lambda row: weights[row, skip]), skip] = True  # first on a tie


def _parse(masked, steps, betas):
    """The top-2 parse on weights with barred ops at -inf: [(edge row, op index, input)]."""
    chosen, start = [], 0
    for node in range(steps):
        rows = masked[start:start + node + 2]
        # Stable sort: on a tie the lower input index wins, as in the original parse.
        strongest = sorted(_candidate_edges(node, betas[node]), key=lambda j: -rows[j].max())[:2]
        chosen.extend((start + j, int(np.argmax(rows[j])), j) for j in strongest)
        start += node + 2
    return chosen


def derive_genotype(weights_normal, weights_reduce, steps=STEPS, primitives=PRIMITIVES,
                    betas_normal=None, betas_reduce=None, max_skip=None):
    """Genotype from the normalised weights of both cells; every node goes into the concat.

    `betas_<cell>`: per-node edge scores as in `derive_cell` (one entry per node, or None).
    `max_skip`: the most skip_connect ops the normal cell keeps (P-DARTS; `derive_cell`);
    the reduction cell is not capped.
    """
    concat = list(range(2, 2 + steps))
    return Genotype(normal=derive_cell(weights_normal, steps, primitives, betas_normal, max_skip),
                    normal_concat=concat,
                    reduce=derive_cell(weights_reduce, steps, primitives, betas_reduce),
                    reduce_concat=list(concat))


def genotype_from_alphas(alphas_normal, alphas_reduce, primitives=PRIMITIVES):
    """Softmax the raw alphas, then derive; the number of nodes follows from the edge count."""
    steps = steps_from_edges(np.shape(alphas_normal)[0])
    return derive_genotype(softmax(alphas_normal), softmax(alphas_reduce), steps, primitives)


def genotype_from_weights(weights_normal, weights_reduce, primitives=PRIMITIVES,
                          betas_normal=None, betas_reduce=None, max_skip=None):
    """Derive from already normalised op weights (e.g. DAAS's softmax(f(alpha)) over 7 ops).

    `betas_<cell>`: None, or the edge scores of nodes 1..steps-1 only (DAAS: 3 arrays of
    3, 4, 5 scores), the layout of history.json's softmax_betas_<cell>. Node 0 takes no
    scores: with 2 inputs it keeps both whatever they are.  `max_skip`: as in `derive_genotype`.
    """
    steps = steps_from_edges(np.shape(weights_normal)[0])
    return derive_genotype(weights_normal, weights_reduce, steps, primitives,
                           _with_node0(betas_normal, steps), _with_node0(betas_reduce, steps),
                           max_skip)


def _with_node0(betas, steps):
    if betas is None:
        return None
    if len(betas) != steps - 1:
        raise ValueError(f"betas has {len(betas)} entries; with {steps} nodes give the scores "
                         f"of nodes 1..{steps - 1} ({steps - 1} entries), node 0 has none")
    return [None, *betas]


# --------------------------------------------------------------------------- text format

def _format_ops(ops):
    return '[' + ', '.join(f"('{op}', {int(j)})" for op, j in ops) + ']'


def _format_concat(concat):
    return '[' + ', '.join(str(int(j)) for j in concat) + ']'


def format_genotype(g):
    """The one-line ``Genotype(...)`` spelling of genotypes.py, ready to paste there."""
    g = validate_genotype(g)
    return (f"Genotype(normal={_format_ops(g.normal)}, normal_concat={_format_concat(g.normal_concat)}, "
            f"reduce={_format_ops(g.reduce)}, reduce_concat={_format_concat(g.reduce_concat)})")


def _snippet(node):
    text = ' '.join(ast.unparse(node).split())
    return text if len(text) <= 60 else text[:57] + '...'


def _literal(node, field):
    """Turn an allowed AST node into a Python value; everything else is refused, never run."""
    if isinstance(node, ast.Constant) and (isinstance(node.value, str) or _is_int(node.value)):
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant) and _is_int(node.operand.value)):
        return -node.operand.value  # so that validation can say "index -1 out of range"
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item, field) for item in node.elts]
    if field.endswith('_concat') and _is_range_call(node):
        return range(*[_literal(arg, field) for arg in node.args])  # validation lists it
    raise UserError(f"{field}: `{_snippet(node)}` is not allowed in a genotype literal; expected "
                    + ("a list of ints or range(a, b)" if field.endswith('_concat')
                       else "a list of ('op name', input index) pairs"))


def _is_range_call(node):
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'range'
            and 1 <= len(node.args) <= 2 and not node.keywords
            and all(isinstance(a, ast.Constant) and _is_int(a.value) for a in node.args))


def _call_fields(call):
    """Map Genotype(...) arguments, positional or keyword, onto the four field names."""
    if len(call.args) > len(Genotype._fields):
        raise UserError(f"Genotype(...) takes 4 arguments, got {len(call.args)} positional; "
                        + _EXPECTED_LITERAL)
    fields = {}
    for name, arg in zip(Genotype._fields, call.args):
        if isinstance(arg, ast.Starred):
            raise UserError(f"`{_snippet(arg)}` is not allowed in a genotype literal; " + _EXPECTED_LITERAL)
        fields[name] = arg
    for kw in call.keywords:
        if kw.arg not in Genotype._fields:
            shown = '**' + _snippet(kw.value) if kw.arg is None else kw.arg
            raise UserError(f"Genotype(...) has no field '{shown}'; the fields are "
                            f"{', '.join(Genotype._fields)}")
        if kw.arg in fields:
            raise UserError(f"Genotype(...) gives '{kw.arg}' twice; give each field once")
        fields[kw.arg] = kw.value
    missing = [name for name in Genotype._fields if name not in fields]
    if missing:
        raise UserError(f"Genotype(...) is missing {', '.join(missing)}; " + _EXPECTED_LITERAL)
    return fields


def parse_genotype(text):
    """Parse a ``Genotype(...)`` literal (flat or nested per node, concat may be range(...)).

    The text is only walked as a syntax tree, never evaluated, so pasting it is safe.
    """
    if not isinstance(text, str):
        raise UserError(f"expected genotype text, got {type(text).__name__}")
    try:
        tree = ast.parse(text.strip(), mode='eval')
    except SyntaxError as exc:
        raise UserError(f"genotype literal is not valid Python syntax ({exc.msg}); "
                        + _EXPECTED_LITERAL) from None
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == 'Genotype'):
        raise UserError(f"`{_snippet(call)}` is not a Genotype(...) call; " + _EXPECTED_LITERAL)
    values = {name: _literal(node, name) for name, node in _call_fields(call).items()}
    return validate_genotype(Genotype(**values))


# --------------------------------------------------------------------------- JSON

def genotype_to_json(g):
    """Plain dict for json.dump: pairs become [op, index] lists."""
    g = validate_genotype(g)
    return {name: [list(pair) for pair in value] if name in ('normal', 'reduce') else list(value)
            for name, value in g._asdict().items()}


def genotype_from_json(obj):
    """Genotype from the bare dict or from a larger record holding it under "genotype"."""
    if isinstance(obj, dict) and 'genotype' in obj:
        obj = obj['genotype']
    if isinstance(obj, str):
        return parse_genotype(obj)
    if not isinstance(obj, dict):
        raise UserError(f"genotype JSON must be an object with keys {', '.join(Genotype._fields)} "
                        f"(or hold one under \"genotype\"), got {type(obj).__name__}")
    if 'space' in obj:  # another space's cell: a NAS-Bench-201 search's genotype.json
        raise UserError(f"the JSON holds a cell of the {obj['space']!r} space, not a DARTS "
                        "genotype; train.py --arch takes NAS-Bench-201 cells")
    missing = [name for name in Genotype._fields if name not in obj]
    if missing:
        raise UserError(f"genotype JSON lacks {', '.join(missing)}; expected keys "
                        f"{', '.join(Genotype._fields)}")
    return validate_genotype(Genotype(**{name: obj[name] for name in Genotype._fields}))


def save_genotype_json(g, path):
    """Write atomically, so a reader never sees half a file (searches save every epoch)."""
    path = Path(path)
    # One field per line: readable, and still a diff-friendly single line per cell.
    fields = genotype_to_json(g).items()
    text = '{\n' + ',\n'.join(f'  {json.dumps(k)}: {json.dumps(v)}' for k, v in fields) + '\n}\n'
    write_atomic(path, lambda f: f.write(text), mode='w')
    return path


def read_genotype_file(path):
    """The parsed JSON of a genotype file (registry.py reads NAS-Bench-201 cells from it
    too); UserError when it is missing, not UTF-8 or not JSON."""
    path = Path(path)
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(f"genotype file {path} does not exist; check the path") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"genotype file {path} is not UTF-8 text ({exc.reason} at byte "
                        f"{exc.start}); pass a genotype JSON saved as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"genotype file {path} is not valid JSON ({exc}); "
                        "write it with save_genotype_json or fix it by hand") from None


def load_genotype_json(path):
    obj = read_genotype_file(path)
    try:
        return genotype_from_json(obj)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
