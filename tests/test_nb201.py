"""NAS-Bench-201's arch strings and table (darts_paddle/nb201/).  The table's key order is
pinned against the table itself from the paper's definition of the cell (node j is the sum
over i < j of op(node i); the output is node 3): a cell whose output nothing reaches
outputs zeros and scores chance, every other cell learns."""

import itertools

import numpy as np
import pytest

from darts_paddle.errors import UserError
from darts_paddle.nb201 import table
from darts_paddle.nb201.__main__ import main
from darts_paddle.nb201.arch import EDGES, OPS, format_arch, parse, reaches_output

ALL_CELLS = list(itertools.product(OPS, repeat=6))
ARCH_ORDER = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]  # the paper's arch strings
needs_table = pytest.mark.skipif(not table.available(),
                                 reason="pip install 'darts-paddle[nb201]'")


def output_reached(edge_ops):
    """{(i, j): op} -> is node 3 reachable from node 0 over edges whose op is not 'none'?
    By the adjacency matrix's powers, apart from arch.py's walk."""
    adjacency = np.zeros((4, 4), int)
    for (i, j), op in edge_ops.items():
        adjacency[i, j] = op != "none"
    paths = sum(np.linalg.matrix_power(adjacency, k) for k in range(1, 4))
    return bool(paths[0, 3])


def test_the_edges_are_the_arch_strings_node_by_node():
    assert list(EDGES) == ARCH_ORDER


def test_every_cell_round_trips_through_its_arch_string():
    for ops in ALL_CELLS:
        assert parse(format_arch(ops)) == ops
    assert format_arch(("nor_conv_3x3", "none", "nor_conv_3x3", "skip_connect", "none",
                        "skip_connect")) == ("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+"
                                             "|skip_connect~0|none~1|skip_connect~2|")


@pytest.mark.parametrize("text, fault", [
    ("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|", "expected 3 nodes"),
    ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv'"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 input"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must read 'none~0'"),
    ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "enclosed in '|'"),
])
def test_a_malformed_arch_string_is_one_error_naming_the_fault(text, fault):
    with pytest.raises(UserError, match=fault):
        parse(text)


def test_reaches_output_agrees_with_the_adjacency_matrix():
    for ops in ALL_CELLS:
        assert reaches_output(ops) == output_reached(dict(zip(ARCH_ORDER, ops)))


def reached_by_order(live, order):
    """live [cells, 6]: which digits of each table key are not 'none', read as the edges
    `order` -> is node 3 reached?  Node by node over every cell at once (node j is reached
    when an edge from a reached node i < j carries an op other than 'none')."""
    column = {edge: live[:, n] for n, edge in enumerate(order)}
    reached = {0: np.ones(len(live), bool)}
    for j in (1, 2, 3):
        reached[j] = np.any([reached[i] & column[(i, j)] for i in range(j)], axis=0)
    return reached[3]


@needs_table
@pytest.mark.parametrize("dataset, chance, failed", [("cifar10", 10, 0), ("cifar100", 1, 0),
                                                     ("imagenet", 1, 1)])
def test_the_tables_key_lists_the_edges_in_arch_string_order(dataset, chance, failed):
    """Read in arch-string order, the cells scoring chance are those whose output nothing
    reaches, and `failed` trainings besides (one ImageNet16-120 cell of three 1x1 convs in
    a row).  Every other order of the edges, NASLib's (0->1, 0->2, 0->3, 1->2, ...) among
    them, disagrees by hundreds of cells, but the graph's reversal, which maps reachability
    onto itself."""
    rows = table.rows(dataset)
    assert len(rows) == 5 ** 6
    keys = list(rows)
    means = np.array([np.mean(rows[k]["val_acc"]) for k in keys])
    assert np.all((means < chance + 0.5) | (means > 2 * chance))
    learns = means > 2 * chance
    live = np.array([[d != str(OPS.index("none")) for d in k] for k in keys])

    def disagreements(order):
        return int(np.sum(reached_by_order(live, order) != learns))

    reversal = [(3 - j, 3 - i) for i, j in ARCH_ORDER]  # the same graph read backwards
    assert disagreements(ARCH_ORDER) == disagreements(reversal) == failed
    assert disagreements([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]) > 100  # NASLib's
    others = [list(p) for p in itertools.permutations(ARCH_ORDER)
              if list(p) not in (ARCH_ORDER, reversal)]
    assert min(disagreements(order) for order in others) > 100


@needs_table
def test_published_cells_have_their_entries():
    """The all-skip cell DARTS collapses to, and NAS-Bench-201's optimum validation
    accuracies 91.61 / 73.49 / 46.73 as the table's maxima."""
    skip = ("skip_connect",) * 6
    assert table.key(skip) == "111111"
    expected = {"cifar10": 39.77, "cifar100": 15.03, "imagenet": 16.43}
    for dataset, accuracy in expected.items():
        entry = table.lookup(skip, dataset)
        assert len(entry.accuracies) == 3 and entry.mean == pytest.approx(accuracy, abs=0.005)
    for dataset, best in {"cifar10": 91.61, "cifar100": 73.49, "imagenet": 46.73}.items():
        means = [np.mean(row["val_acc"]) for row in table.rows(dataset).values()]
        assert max(means) == pytest.approx(best, abs=0.005)


# NAS-Bench-201's ResNet cell (xautodl's ResNet_CODE: node 3 = x + conv3x3(conv3x3(x))) and
# its published validation accuracies on CIFAR-100 and ImageNet16-120 (NB201, table 5)
RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
RESNET_PUBLISHED = {"cifar100": 70.42, "imagenet": 44.53}


@needs_table
def test_the_resnet_cell_tells_the_key_order_from_its_reversal():
    """The one order the reachability test cannot tell apart, the graph read backwards,
    maps the ResNet cell onto another cell: the published values are among the ResNet
    cell's training seeds and not among those of its reversal."""
    ops = parse(RESNET)
    reversed_ops = [None] * 6
    for (i, j), op in zip(ARCH_ORDER, ops):
        reversed_ops[ARCH_ORDER.index((3 - j, 3 - i))] = op
    assert tuple(reversed_ops) != ops and table.key(ops) == "303101"
    for dataset, published in RESNET_PUBLISHED.items():
        ours = table.lookup(ops, dataset).accuracies
        theirs = table.lookup(tuple(reversed_ops), dataset).accuracies
        assert min(abs(a - published) for a in ours) < 0.005
        assert min(abs(a - published) for a in theirs) > 0.05


@needs_table
def test_the_command_prints_a_cells_entries(capsys):
    best = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|"
            "nor_conv_3x3~1|nor_conv_3x3~2|")
    assert main([best]) == 0
    out = capsys.readouterr().out
    assert "table key 333133" in out and "cifar100   73.49 +- 0.08 % over 3 seeds" in out
    assert main(["|nor_conv_3x3~0|"]) == 2
    assert "error: arch string" in capsys.readouterr().err


def test_a_missing_table_names_the_extra_to_install(monkeypatch):
    monkeypatch.setattr(table, "available", lambda: False)
    table.rows.cache_clear()
    with pytest.raises(UserError, match=r"pip install 'darts-paddle\[nb201\]'"):
        table.rows("cifar10")
    table.rows.cache_clear()
