"""NAS-Bench-201's cell as its arch string: 4 nodes, node 0 the cell's input, node j the
sum over i < j of op(node i), node 3 the output; one of 5 ops on each of the 6 edges.

The string lists the edges node by node, each node's inputs in order:
`|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` for the edges 0->1; 0->2, 1->2; 0->3, 1->3, 2->3."""

import json

from ..errors import UserError
from ..storage.atomic import write_atomic

SPACE = "nb201"  # the "space" of a cell's JSON: {"space": "nb201", "arch": ARCH_STRING}
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NODES = 4
EDGES = tuple((i, j) for j in range(1, NODES) for i in range(j))  # the string's order
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def parse(text):
    """An arch string -> the op of every edge, in EDGES order; UserError naming the fault."""
    text = str(text).strip()
    nodes = text.split("+")
    if len(nodes) != NODES - 1:
        raise UserError(f"arch string {text!r}: expected {NODES - 1} nodes joined by '+', "
                        f"such as {EXAMPLE}")
    ops = []
    for j, node in enumerate(nodes, 1):
        if not (node.startswith("|") and node.endswith("|")):
            raise UserError(f"arch string {text!r}: node {j} ({node!r}) must be enclosed in "
                            f"'|', such as {EXAMPLE}")
        inputs = node[1:-1].split("|")
        if len(inputs) != j:
            raise UserError(f"arch string {text!r}: node {j} needs {j} input(s), got "
                            f"{len(inputs)}")
        for i, item in enumerate(inputs):
            op, _, source = item.partition("~")
            if op not in OPS:
                raise UserError(f"arch string {text!r}: unknown op {op!r}; one of "
                                f"{', '.join(OPS)}")
            if source != str(i):
                raise UserError(f"arch string {text!r}: input {i} of node {j} must read "
                                f"'{op}~{i}', got {item!r}")
            ops.append(op)
    return tuple(ops)


def format_arch(ops):
    """The op of every edge (EDGES order) -> the arch string."""
    if len(ops) != len(EDGES) or any(op not in OPS for op in ops):
        raise ValueError(f"expected {len(EDGES)} ops from {OPS}, got {ops}")
    nodes, k = [], 0
    for j in range(1, NODES):
        nodes.append("|" + "|".join(f"{ops[k + i]}~{i}" for i in range(j)) + "|")
        k += j
    return "+".join(nodes)


def reaches_output(ops):
    """Does anything of the input reach node 3 through ops other than 'none'?  A cell
    where it does not outputs zeros, whatever its weights."""
    reached = {0}
    for (i, j), op in zip(EDGES, ops):  # EDGES lists each node's inputs before the node
        if i in reached and op != "none":
            reached.add(j)
    return NODES - 1 in reached


def to_json(ops):
    """The cell as the JSON a search writes (genotype.json) and train.py --arch reads."""
    return {"space": SPACE, "arch": format_arch(ops)}


def is_cell_json(obj):
    """Is `obj` (parsed JSON) a NAS-Bench-201 cell, or a record holding one under
    "genotype" (a history.json epoch)?"""
    if isinstance(obj, dict) and isinstance(obj.get("genotype"), dict):
        obj = obj["genotype"]
    return isinstance(obj, dict) and obj.get("space") == SPACE


def from_json(obj):
    """The op of every edge from `to_json`'s dict, or a record holding it under "genotype"."""
    if isinstance(obj, dict) and isinstance(obj.get("genotype"), dict):
        obj = obj["genotype"]
    if not (isinstance(obj, dict) and obj.get("space") == SPACE and "arch" in obj):
        raise UserError(f'a NAS-Bench-201 cell\'s JSON is {{"space": "{SPACE}", "arch": '
                        f'"{EXAMPLE}"}}; got {str(obj)[:200]}')
    return parse(obj["arch"])


def save_json(ops, path):
    """Write the cell's JSON atomically (a reader never sees half a file)."""
    text = json.dumps(to_json(ops), indent=2) + "\n"
    write_atomic(path, lambda f: f.write(text), mode="w")
    return path
