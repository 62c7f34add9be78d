"""NAS-Bench-201's cell as its arch string: 4 nodes, node 0 the cell's input, node j the
sum over i < j of op(node i), node 3 the output; one of 5 ops on each of the 6 edges.

The string lists the edges node by node, each node's inputs in order:
`|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` for the edges 0->1; 0->2, 1->2; 0->3, 1->3, 2->3."""

from ..errors import UserError

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
