"""Where each tensor of a PyTorch DARTS state_dict goes in our networks: one `Assign` per
role (stem, cell i preprocess / op / BN, auxiliary head, classifier, BN running mean and
variance, alphas).

Our side is read off the network objects themselves (nets/networks.py, supernet.py), so the
banked and fused layouts are never spelled out twice: a weight `Entry` knows its bank and
first row, a BN's `BNStats` its offset in the flat statistics buffer.  The PyTorch side is
the published module tree (bench/torch_reference/models.py builds the same keys).

The fused supernet keeps the E edges leaving a state in one tensor, edge-major: edge e
owns rows e*C .. (e+1)*C - 1 of every depthwise conv of a primitive; the 1x1 convs and BNs
of the four conv primitives are stacked op-major first (supernet.py, ConvOps).  Its
pools run once per state with one BN, where the original has one BN per edge: the
running statistics of those BNs saw the same input and are equal, so they are averaged.
Torch Linear weights are [out, in], ours [in, out].
"""

from dataclasses import dataclass
from typing import Tuple

from ..nets.eval_ops import AvgPool, Conv7x1_1x7, DilConv, Identity, MaxPool, SepConv
from ..genotype import PRIMITIVES
from ..nets.networks import NetworkCIFAR
from ..nets.ops import FactorizedReduce
from ..search.supernet import ALPHAS, CONV_OPS, edge_index


@dataclass(frozen=True)
class Slot:
    """Rows start .. start + shape[0] - 1 of one checkpoint array (bank, BN buffer, alpha)."""

    var: str
    start: int
    shape: Tuple[int, ...]
    transpose: bool = False  # a torch Linear weight, [out, in] -> [in, out]


@dataclass(frozen=True)
class Assign:
    sources: Tuple[str, ...]  # several: BN statistics of edges that share one BN (averaged)
    slot: Slot


def weight(key, entry, first=0, rows=None, transpose=False):
    rows = entry.shape[0] if rows is None else rows
    return Assign((key,), Slot(entry.bank, entry.offset + first, (rows, *entry.shape[1:]),
                               transpose))


def statistics(keys, bn, stats_prefix, first=0, channels=None):
    """running_mean / running_var of the BN(s) at `keys` (prefixes ending in '.')."""
    channels = bn.stats.channels if channels is None else channels
    start = bn.stats.offset + first
    return [Assign(tuple(k + "running_" + s for k in keys),
                   Slot(f"{stats_prefix}.{s}", start, (channels,))) for s in ("mean", "var")]


def batch_norm(key, bn, stats_prefix):
    """A whole BN: its statistics, and scale and shift when it is affine."""
    out = statistics([key], bn, stats_prefix)
    if bn.scale is not None:
        out += [weight(key + "weight", bn.scale), weight(key + "bias", bn.shift)]
    return out


# --------------------------------------------------------------------------- evaluation networks

def _relu_conv_bn(key, block, S):
    return [weight(key + "op.1.weight", block.weight), *batch_norm(key + "op.2.", block.bn, S)]


def _factorized_reduce(key, block, S):
    return [weight(key + "conv_1.weight", block.conv_1), weight(key + "conv_2.weight", block.conv_2),
            *batch_norm(key + "bn.", block.bn, S)]


def _separable(key, block, S, first):
    """ReLU, depthwise, 1x1, BN at Sequential indices first-1 .. first+2."""
    return [weight(f"{key}op.{first}.weight", block.depthwise),
            weight(f"{key}op.{first + 1}.weight", block.pointwise),
            *batch_norm(f"{key}op.{first + 2}.", block.bn, S)]


def _preprocess(key, block, S):
    if isinstance(block, FactorizedReduce):
        return _factorized_reduce(key, block, S)
    return _relu_conv_bn(key, block, S)


def eval_op(key, op, S):
    """The tensors of one genotype op at `key` (e.g. 'cells.0._ops.2.')."""
    if isinstance(op, (Identity, MaxPool, AvgPool)):
        return []
    if isinstance(op, SepConv):
        return _separable(key, op.first, S, 1) + _separable(key, op.second, S, 5)
    if isinstance(op, DilConv):
        return _separable(key, op, S, 1)
    if isinstance(op, FactorizedReduce):  # stride-2 skip_connect
        return _factorized_reduce(key, op, S)
    if isinstance(op, Conv7x1_1x7):  # a bare Sequential in the original
        return [weight(key + "1.weight", op.conv_1x7), weight(key + "2.weight", op.conv_7x1),
                *batch_norm(key + "3.", op.bn, S)]
    raise TypeError(f"no PyTorch layout for {type(op).__name__}")


def _stems(net, S):
    if isinstance(net, NetworkCIFAR):
        return [weight("stem.0.weight", net.stem_conv), *batch_norm("stem.1.", net.stem_bn, S)]
    return [weight("stem0.0.weight", net.stem0_conv1), *batch_norm("stem0.1.", net.stem0_bn1, S),
            weight("stem0.3.weight", net.stem0_conv2), *batch_norm("stem0.4.", net.stem0_bn2, S),
            weight("stem1.1.weight", net.stem1_conv), *batch_norm("stem1.2.", net.stem1_bn, S)]


def _auxiliary_head(head, S):
    k = "auxiliary_head."
    out = [weight(k + "features.2.weight", head.conv_128),
           *batch_norm(k + "features.3.", head.bn_128, S),
           weight(k + "features.5.weight", head.conv_768)]
    if head.bn_768 is not None:  # CIFAR's head only
        out += batch_norm(k + "features.6.", head.bn_768, S)
    return out + [weight(k + "classifier.weight", head.classifier_w, transpose=True),
                  weight(k + "classifier.bias", head.classifier_b)]


def eval_assignments(net):
    """Every Assign of a NetworkCIFAR / NetworkImageNet (nets/networks.py), auxiliary head
    included."""
    S = net.stats.prefix
    out = _stems(net, S)
    for i, cell in enumerate(net.cells):
        key = f"cells.{i}."
        out += _preprocess(key + "preprocess0.", cell.preprocess0, S)
        out += _preprocess(key + "preprocess1.", cell.preprocess1, S)
        for k, op in enumerate(cell.ops):
            out += eval_op(f"{key}_ops.{k}.", op, S)
    if net.auxiliary:
        out += _auxiliary_head(net.aux_head, net.aux_stats.prefix)
    return out + [weight("classifier.weight", net.classifier_w, transpose=True),
                  weight("classifier.bias", net.classifier_b)]


# --------------------------------------------------------------------------- search network

def _conv_op(key, convs, i, e, S):
    """Edge e's slice of conv primitive CONV_OPS[i] in a ConvOps at `key` ('..._ops.4.'):
    its depthwise weights are edge-major, the 1x1 weights and BN channels op-major first."""
    C, E = convs.C, convs.E
    row = (i * E + e) * C
    out = [weight(key + "op.1.weight", convs.dw_1[i], e * C, C),
           weight(key + "op.2.weight", convs.pw_1, row, C),
           *statistics([key + "op.3."], convs.bn_1, S, row, C)]
    if i < len(convs.dw_2):  # a sep conv: its second half
        out += [weight(key + "op.5.weight", convs.dw_2[i], e * C, C),
                weight(key + "op.6.weight", convs.pw_2, row, C),
                *statistics([key + "op.7."], convs.bn_2, S, row, C)]
    return out


def _edges_from_state(cell_key, j, source, S):
    """All mixed ops leaving state j of a search cell (supernet.EdgesFromState)."""
    C, out = source.C, []
    mixed = [f"{cell_key}_ops.{edge_index(j, node)}._ops." for node in source.nodes]
    for e, key in enumerate(mixed):
        for i, op in enumerate(CONV_OPS):
            out += _conv_op(f"{key}{PRIMITIVES.index(op)}.", source.convs, i, e, S)
        if source.reduce is not None:  # stride-2 skip_connect: FactorizedReduce per edge
            k, fr = f"{key}{PRIMITIVES.index('skip_connect')}.", source.reduce
            out += [weight(k + "conv_1.weight", fr.conv_1, e * C // 2, C // 2),
                    weight(k + "conv_2.weight", fr.conv_2, e * C // 2, C // 2),
                    *statistics([k + "bn."], fr.bn, S, e * C, C)]
    for p, pool in enumerate(("max_pool_3x3", "avg_pool_3x3")):  # [max | avg] channels
        keys = [f"{key}{PRIMITIVES.index(pool)}.1." for key in mixed]
        out += statistics(keys, source.pool_bn, S, p * C, C)
    return out


def search_assignments(net):
    """Every Assign of a SearchNetwork (supernet.py), both alphas included."""
    S = net.stats.prefix
    out = [weight("stem.0.weight", net.stem_conv), *batch_norm("stem.1.", net.stem_bn, S)]
    for i, cell in enumerate(net.cells):
        key = f"cells.{i}."
        out += _preprocess(key + "preprocess0.", cell.preprocess0, S)
        out += _preprocess(key + "preprocess1.", cell.preprocess1, S)
        for j, source in enumerate(cell.sources):
            out += _edges_from_state(key, j, source, S)
    out += [weight("classifier.weight", net.classifier_w, transpose=True),
            weight("classifier.bias", net.classifier_b)]
    edges = sum(2 + i for i in range(4))
    return out + [Assign((a,), Slot(a, 0, (edges, len(PRIMITIVES)))) for a in ALPHAS]


def target_shapes(net, search):
    """{checkpoint array: shape} that the Assigns of `net` fill."""
    stores = [(net.params, net.stats)] if search else net.stores()
    shapes = {}
    for params, stats in stores:
        shapes.update({bank: tuple(shape) for bank, shape in params.bank_shapes().items()})
        shapes.update({f"{stats.prefix}.{s}": (stats.size,) for s in ("mean", "var")})
    if search:
        shapes.update({a: (sum(2 + i for i in range(4)), len(PRIMITIVES)) for a in ALPHAS})
    return shapes
