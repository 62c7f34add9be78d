"""The DARTS networks in PyTorch, in the module layout of the original PyTorch release.

Two uses: the checkpoints users bring are state_dicts of these networks (convert_torch/convert.py
maps every key of them into our banks), and the side-by-side benchmark trains them on the
CPU.  So the module tree reproduces the published state_dict keys exactly (`stem.0.weight`,
`cells.3.preprocess0.conv_1.weight`, `cells.0._ops.2.op.1.weight`,
`auxiliary_head.features.2.weight`, search network `cells.1._ops.4._ops.1.1.running_mean`,
...), and the forward passes are the published computations (docs/algorithm.md sections 1, 2, 6).

API (torch is imported here only: it is an optional dependency, `pip install
darts-paddle[torch]`):

    search_network(C, num_classes, layers, in_channels=3)       -> SearchNetwork
    eval_network(kind, genotype, C, num_classes, layers, auxiliary, in_channels=3)
                                                                 -> NetworkCIFAR / NetworkImageNet

    SearchNetwork(x) -> logits;  .arch_parameters() -> [alphas_normal, alphas_reduce];
                     .weight_parameters() (= .parameters(): the alphas are not in them)
    Network*(x) -> (logits, auxiliary logits or None);  .drop_path_prob (set per epoch)

The alphas stay outside the state_dict as in the original (plain tensors with
requires_grad); they follow `.to()`, `.double()` and friends like parameters do.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from darts_paddle.genotype import PRIMITIVES, validate_genotype
from darts_paddle.registry import resolve_arch

STEPS = 4
STEM_MULTIPLIER = 3


# --------------------------------------------------------------------------- ops

class Zero(nn.Module):
    """'none': zeros of the (strided) output shape."""

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class Identity(nn.Module):
    def forward(self, x):
        return x


class ReLUConvBN(nn.Module):
    def __init__(self, C_in, C_out, kernel, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine))

    def forward(self, x):
        return self.op(x)


def _separable(C_in, C_out, kernel, stride, padding, dilation, affine):
    """ReLU, depthwise k x k, 1x1 conv, BN: the block sep and dil convs are made of."""
    return [nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel, stride=stride, padding=padding, dilation=dilation,
                      groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine)]


class DilConv(nn.Module):
    def __init__(self, C_in, C_out, kernel, stride, padding, dilation, affine=True):
        super().__init__()
        self.op = nn.Sequential(*_separable(C_in, C_out, kernel, stride, padding, dilation,
                                            affine))

    def forward(self, x):
        return self.op(x)


class SepConv(nn.Module):
    """Two separable blocks; only the first has the stride (op.1-3 and op.5-7)."""

    def __init__(self, C_in, C_out, kernel, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(*_separable(C_in, C_in, kernel, stride, padding, 1, affine),
                                *_separable(C_in, C_out, kernel, 1, padding, 1, affine))

    def forward(self, x):
        return self.op(x)


class FactorizedReduce(nn.Module):
    """Halve the resolution: two 1x1 stride-2 convs, the second shifted by one pixel."""

    def __init__(self, C_in, C_out, affine=True):
        super().__init__()
        assert C_out % 2 == 0, "FactorizedReduce needs an even channel count"
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def make_op(name, C, stride, affine):
    """The op a genotype (or PRIMITIVES) names, on C channels."""
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(C, C, affine)
    if name.startswith("sep_conv_"):
        k = int(name[-1])
        return SepConv(C, C, k, stride, k // 2, affine)
    if name.startswith("dil_conv_"):
        k = int(name[-1])
        return DilConv(C, C, k, stride, 2 * (k // 2), 2, affine)
    if name == "conv_7x1_1x7":  # a bare Sequential: keys `1.weight`, `2.weight`, `3.*`
        return nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(C, C, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(C, affine=affine))
    raise ValueError(f"unknown op {name!r}")


# --------------------------------------------------------------------------- search network

class MixedOp(nn.Module):
    """sum_k w[k] op_k(x) over PRIMITIVES; pools get a non-affine BN (`_ops.1.1`)."""

    def __init__(self, C, stride):
        super().__init__()
        self._ops = nn.ModuleList()
        for name in PRIMITIVES:
            op = make_op(name, C, stride, affine=False)
            if "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            self._ops.append(op)

    def forward(self, x, weights):
        # 'none' adds w * 0: skipping it changes neither the value nor any gradient
        return sum(w * op(x) for w, op in zip(weights, self._ops) if not isinstance(op, Zero))


class SearchCell(nn.Module):
    def __init__(self, C_pp, C_p, C, reduction, reduction_prev, steps=STEPS):
        super().__init__()
        self.reduction, self.steps = reduction, steps
        self.preprocess0 = (FactorizedReduce(C_pp, C, affine=False) if reduction_prev
                            else ReLUConvBN(C_pp, C, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        # edges node by node: node i reads states 0 .. i+1
        self._ops = nn.ModuleList(
            MixedOp(C, 2 if reduction and j < 2 else 1)
            for i in range(steps) for j in range(2 + i))

    def forward(self, s0, s1, weights):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        edge = 0
        for _ in range(self.steps):
            node = sum(self._ops[edge + j](h, weights[edge + j]) for j, h in enumerate(states))
            edge += len(states)
            states.append(node)
        return torch.cat(states[-self.steps:], dim=1)


class SearchNetwork(nn.Module):
    """model_search.Network: stem, `layers` cells (reductions at L/3, 2L/3), pool, linear."""

    def __init__(self, C=16, num_classes=10, layers=8, in_channels=3):
        super().__init__()
        C_curr = STEM_MULTIPLIER * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C_curr))
        C_pp, C_p, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            self.cells.append(SearchCell(C_pp, C_p, C_curr, reduction, reduction_prev))
            reduction_prev = reduction
            C_pp, C_p = C_p, STEPS * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)
        edges = sum(2 + i for i in range(STEPS))
        self.alphas_normal = (1e-3 * torch.randn(edges, len(PRIMITIVES))).requires_grad_()
        self.alphas_reduce = (1e-3 * torch.randn(edges, len(PRIMITIVES))).requires_grad_()

    def arch_parameters(self):
        return [self.alphas_normal, self.alphas_reduce]

    def weight_parameters(self):
        return list(self.parameters())

    def _apply(self, fn, *args, **kwargs):
        # the alphas are not registered (not in the state_dict, as published) but must
        # follow dtype and device changes like the weights
        super()._apply(fn, *args, **kwargs)
        with torch.no_grad():
            self.alphas_normal = fn(self.alphas_normal).detach().requires_grad_()
            self.alphas_reduce = fn(self.alphas_reduce).detach().requires_grad_()
        return self

    def forward(self, x):
        normal = F.softmax(self.alphas_normal, dim=-1)
        reduce = F.softmax(self.alphas_reduce, dim=-1)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))


# --------------------------------------------------------------------------- evaluation networks

def drop_path(x, drop_prob):
    """Zero whole samples with probability p, scale the others by 1 / (1 - p)."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x / keep * mask


class EvalCell(nn.Module):
    def __init__(self, genotype, C_pp, C_p, C, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(C_pp, C) if reduction_prev
                            else ReLUConvBN(C_pp, C, 1, 1, 0))
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0)
        pairs = genotype.reduce if reduction else genotype.normal
        self._concat = list(genotype.reduce_concat if reduction else genotype.normal_concat)
        self._indices = [j for _, j in pairs]
        self._ops = nn.ModuleList(make_op(op, C, 2 if reduction and j < 2 else 1, affine=True)
                                  for op, j in pairs)
        self._steps = len(pairs) // 2
        self.multiplier = len(self._concat)

    def forward(self, s0, s1, drop_prob):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(self._steps):
            node = 0
            for k in (2 * i, 2 * i + 1):
                h = self._ops[k](states[self._indices[k]])
                if self.training and drop_prob > 0 and not isinstance(self._ops[k], Identity):
                    h = drop_path(h, drop_prob)
                node = node + h
            states.append(node)
        return torch.cat([states[j] for j in self._concat], dim=1)


class AuxiliaryHead(nn.Module):
    """CIFAR (8x8 input): pool stride 3, BN after the 768 conv; ImageNet (7x7 or 8x8):
    pool stride 2 and no BN there (as published)."""

    def __init__(self, C, num_classes, imagenet):
        super().__init__()
        # not in place: the head's input is also the next cell's (published: inplace=True,
        # harmless there since every cell starts with a ReLU; not when the head is last)
        layers = [nn.ReLU(inplace=False),
                  nn.AvgPool2d(5, stride=2 if imagenet else 3, padding=0,
                               count_include_pad=False),
                  nn.Conv2d(C, 128, 1, bias=False),
                  nn.BatchNorm2d(128),
                  nn.ReLU(inplace=True),
                  nn.Conv2d(128, 768, 2, bias=False)]
        if not imagenet:
            layers.append(nn.BatchNorm2d(768))
        layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class _EvalNetwork(nn.Module):
    imagenet = False

    def _build_cells(self, genotype, C, num_classes, layers, auxiliary, C_pp, C_p,
                     reduction_prev):
        self._layers, self._auxiliary = layers, auxiliary
        self.drop_path_prob = 0.0
        self.cells = nn.ModuleList()
        C_curr = C
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            cell = EvalCell(genotype, C_pp, C_p, C_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_pp, C_p = C_p, cell.multiplier * C_curr
            if i == 2 * layers // 3 and auxiliary:
                self.auxiliary_head = AuxiliaryHead(C_p, num_classes, self.imagenet)
        return C_p

    def stems(self, x):
        raise NotImplementedError

    def forward(self, x):
        s0, s1 = self.stems(x)
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == 2 * self._layers // 3 and self._auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        logits = self.classifier(torch.flatten(self.global_pooling(s1), 1))
        return logits, logits_aux


class NetworkCIFAR(_EvalNetwork):
    def __init__(self, C, num_classes, layers, auxiliary, genotype, in_channels=3):
        super().__init__()
        C_stem = STEM_MULTIPLIER * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C_stem))
        C_p = self._build_cells(genotype, C, num_classes, layers, auxiliary, C_stem, C_stem,
                                False)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)

    def stems(self, x):
        s = self.stem(x)
        return s, s


class NetworkImageNet(_EvalNetwork):
    """224x224 inputs: the stems divide by 8, the two reductions by 4, the head pools 7x7."""

    imagenet = True

    def __init__(self, C, num_classes, layers, auxiliary, genotype, in_channels=3):
        super().__init__()
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C))
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=False),  # s0 itself goes on to the first cell
            nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C))
        C_p = self._build_cells(genotype, C, num_classes, layers, auxiliary, C, C, True)
        self.global_pooling = nn.AvgPool2d(7)  # as published: a 7x7 map at 224x224 input
        self.classifier = nn.Linear(C_p, num_classes)

    def stems(self, x):
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


# --------------------------------------------------------------------------- factories

def search_network(C=16, num_classes=10, layers=8, in_channels=3):
    """model_search.Network with the alphas drawn as 1e-3 * N(0, 1)."""
    return SearchNetwork(C, num_classes, layers, in_channels)


def eval_network(kind, genotype, C, num_classes, layers, auxiliary, in_channels=3):
    """kind 'cifar' or 'imagenet'; genotype a Genotype or an --arch string."""
    if isinstance(genotype, str):
        genotype = resolve_arch(genotype)
    genotype = validate_genotype(genotype)
    cls = {"cifar": NetworkCIFAR, "imagenet": NetworkImageNet}[kind]
    return cls(C, num_classes, layers, auxiliary, genotype, in_channels)


__all__ = ["search_network", "eval_network", "SearchNetwork", "NetworkCIFAR",
           "NetworkImageNet", "MixedOp", "SearchCell", "EvalCell", "AuxiliaryHead", "make_op",
           "drop_path"]
