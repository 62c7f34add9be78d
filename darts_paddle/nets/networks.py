"""The evaluation networks: cells compiled from a genotype, stacked (docs/algorithm.md section 6).

    NetworkCIFAR      stem conv 3x3 + BN, `layers` cells (reductions at L/3 and 2L/3),
                      auxiliary head after cell 2L/3, global pool + linear
    NetworkImageNet   two stride-2 stems, cells, auxiliary head after cell 2L/3, pool + linear

Weights live in a ParamStore (banks, see params.py) and BN statistics in a StatsStore,
declared while the network is constructed, so the parameter count needs no program.  The
auxiliary head has stores of its own: the published parameter counts exclude it, and the
inference program does not need it at all.

Drop path: during training every op that is not an identity is multiplied by a per-sample
mask (Bernoulli(1 - p) / (1 - p)).  The masks are *fed* (one [B, 1, 1, 1] slice per path,
see `DropPath`), drawn in numpy from a generator keyed by (seed, epoch, step): a run resumed
from a checkpoint draws exactly the masks of the uninterrupted run.
"""

import numpy as np

from ..errors import UserError
from .eval_ops import make_op
from ..genotype import fewest_layers, reduction_layers, validate_genotype
from .ops import BatchNorm, FactorizedReduce, ReLUConvBN, conv
from ..paddle_static import F, paddle
from .params import ParamStore, StatsStore, initial_values

PREFIX, BN_PREFIX = "net", "net_bn"
AUX_PREFIX, AUX_BN_PREFIX = "net_aux", "net_aux_bn"


class DropPath:
    """Hands out the fed masks, one per non-identity op, in the order the cells use them."""

    def __init__(self, masks):

        self._masks = iter(paddle.unbind(masks, axis=0))  # one op for all paths

    def __call__(self, h):
        return h * next(self._masks)


def drop_path_masks(rng, paths, batch, drop_prob):
    """[paths, batch, 1, 1, 1] float32: 0 for a dropped sample, 1 / keep for a kept one."""
    keep = 1.0 - drop_prob
    kept = rng.random((paths, batch)) < keep
    masks = kept.astype(np.float32) / np.float32(keep) if keep > 0 else kept.astype(np.float32)
    return masks.reshape(paths, batch, 1, 1, 1)


class EvalCell:
    def __init__(self, params, stats, name, genotype, C_pp, C_p, C, reduction, reduction_prev):
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(params, stats, name + ".preprocess0", C_pp, C,
                                                affine=True)
        else:
            self.preprocess0 = ReLUConvBN(params, stats, name + ".preprocess0", C_pp, C, 1, 1, 0,
                                          affine=True)
        self.preprocess1 = ReLUConvBN(params, stats, name + ".preprocess1", C_p, C, 1, 1, 0,
                                      affine=True)
        pairs = genotype.reduce if reduction else genotype.normal
        self.concat = list(genotype.reduce_concat if reduction else genotype.normal_concat)
        self.reduction = reduction
        self.inputs = [j for _, j in pairs]
        self.ops = [make_op(op, params, stats, f"{name}.ops.{k}.{op}", C,
                            2 if reduction and j < 2 else 1)
                    for k, (op, j) in enumerate(pairs)]
        self.steps = len(pairs) // 2
        self.multiplier = len(self.concat)
        self.drop_paths = sum(not op.is_identity for op in self.ops)

    def __call__(self, s0, s1, ctx, drop=None):
        """drop: a DropPath in training with drop path on, else None."""
        states = [self.preprocess0(s0, ctx), self.preprocess1(s1, ctx)]
        for i in range(self.steps):
            branches = []
            for k in (2 * i, 2 * i + 1):
                h = self.ops[k](states[self.inputs[k]], ctx)
                if drop is not None and not self.ops[k].is_identity:
                    h = drop(h)
                branches.append(h)
            states.append(branches[0] + branches[1])
        return paddle.concat([states[j] for j in self.concat], axis=1)


class AuxiliaryHead:
    """ReLU, avg pool 5 (padding not counted), 1x1 conv 128, BN, ReLU, 2x2 conv 768,
    [BN,] ReLU, linear.  CIFAR: pool stride 3 and a BN after the 768 conv; ImageNet:
    stride 2 and no BN there (as published)."""

    def __init__(self, params, stats, C, num_classes, pool_stride, bn_768):
        self.conv_128 = params.declare("aux.conv_128", [128, C, 1, 1])
        self.bn_128 = BatchNorm(params, stats, "aux.bn_128", 128, affine=True)
        self.conv_768 = params.declare("aux.conv_768", [768, 128, 2, 2])
        self.bn_768 = BatchNorm(params, stats, "aux.bn_768", 768, affine=True) if bn_768 else None
        self.classifier_w = params.declare("aux.classifier.weight", [768, num_classes])
        self.classifier_b = params.declare("aux.classifier.bias", [num_classes], fan_in=768)
        self.pool_stride = pool_stride

    def __call__(self, x, ctx):

        size = x.shape[2]
        if size < 5 or (size - 5) // self.pool_stride + 1 != 2:
            raise UserError(f"the auxiliary head needs {8 if self.pool_stride == 3 else 7}x"
                            f"{8 if self.pool_stride == 3 else 7} feature maps, the images give "
                            f"{size}x{size}: use 32x32 (CIFAR, --image_size 32 for a folder) / "
                            "224x224 (ImageNet) images or train without --auxiliary")
        h = F.avg_pool2d(F.relu(x), 5, self.pool_stride, 0, exclusive=True)
        h = F.relu(self.bn_128(conv(h, self.conv_128), ctx))
        h = conv(h, self.conv_768)
        if self.bn_768 is not None:
            h = self.bn_768(h, ctx)
        h = paddle.flatten(F.relu(h), 1)
        return paddle.matmul(h, self.classifier_w.value) + self.classifier_b.value


class _Network:
    """What both networks share: cells, auxiliary head, classifier, materialize."""

    aux_pool_stride, aux_bn_768 = 3, True

    def __init__(self, C, num_classes, layers, auxiliary, genotype, in_channels):
        self.genotype = validate_genotype(genotype)
        self.C, self.num_classes, self.layers = C, num_classes, layers
        self.auxiliary, self.in_channels = auxiliary, in_channels
        self.params, self.stats = ParamStore(PREFIX), StatsStore(BN_PREFIX)
        self.aux_params = ParamStore(AUX_PREFIX) if auxiliary else None
        self.aux_stats = StatsStore(AUX_BN_PREFIX) if auxiliary else None
        self.aux_index = reduction_layers(layers)[1]  # the head reads the second reduction cell
        if auxiliary and len(set(reduction_layers(layers))) < 2:
            # its maps are then halved once, not twice: blaming the image size would mislead
            twice = fewest_layers(lambda n: len(set(reduction_layers(n))) == 2)
            raise UserError(f"--auxiliary: the auxiliary head reads the maps of the second of "
                            f"two reduction cells, and --layers {layers} has one (cell "
                            f"{self.aux_index}): use --layers {twice} or more, or train without "
                            "--auxiliary")

    def _build_cells(self, C_pp, C_p, C_curr, reduction_prev):
        self.cells = []
        for i in range(self.layers):
            reduction = i in reduction_layers(self.layers)
            if reduction:
                C_curr *= 2
            cell = EvalCell(self.params, self.stats, f"cells.{i}", self.genotype, C_pp, C_p,
                            C_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_pp, C_p = C_p, cell.multiplier * C_curr
            if i == self.aux_index and self.auxiliary:
                self.aux_head = AuxiliaryHead(self.aux_params, self.aux_stats, C_p,
                                              self.num_classes, self.aux_pool_stride,
                                              self.aux_bn_768)
        self.classifier_w = self.params.declare("classifier.weight", [C_p, self.num_classes])
        self.classifier_b = self.params.declare("classifier.bias", [self.num_classes],
                                                fan_in=C_p)

    @property
    def drop_paths(self):
        """How many drop-path masks one training forward uses."""
        return sum(cell.drop_paths for cell in self.cells)

    def stem(self, x, ctx):
        raise NotImplementedError

    def __call__(self, x, ctx, drop=None):
        """-> (logits, auxiliary logits or None); the auxiliary head only in training."""
        s0, s1 = self.stem(x, ctx)
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, ctx, drop)
            if i == self.aux_index and self.auxiliary and ctx.training:
                logits_aux = self.aux_head(s1, ctx)
        # global average pool: ImageNet's avg pool 7 on its 7x7 maps, any size elsewhere
        pooled = paddle.flatten(F.adaptive_avg_pool2d(s1, 1), 1)
        return paddle.matmul(pooled, self.classifier_w.value) + self.classifier_b.value, logits_aux

    def materialize(self, shared, training):
        """Bind weights and statistics in the program being built; returns the weight banks
        (the auxiliary head's too, in training)."""
        banks = self.params.materialize(shared)
        self.stats.materialize(shared)
        if training and self.auxiliary:
            banks += self.aux_params.materialize(shared)
            self.aux_stats.materialize(shared)
        return banks

    def stores(self):
        """(ParamStore, StatsStore) pairs: the network's, then the auxiliary head's."""
        pairs = [(self.params, self.stats)]
        if self.auxiliary:
            pairs.append((self.aux_params, self.aux_stats))
        return pairs

    def initial_values(self, rng):
        return initial_values(self.stores(), rng)


class NetworkCIFAR(_Network):
    def __init__(self, C, num_classes, layers, auxiliary, genotype, in_channels=3,
                 stem_multiplier=3):
        super().__init__(C, num_classes, layers, auxiliary, genotype, in_channels)
        C_stem = stem_multiplier * C
        self.stem_conv = self.params.declare("stem.conv", [C_stem, in_channels, 3, 3])
        self.stem_bn = BatchNorm(self.params, self.stats, "stem.bn", C_stem, affine=True)
        self._build_cells(C_stem, C_stem, C, False)

    def stem(self, x, ctx):
        s = self.stem_bn(conv(x, self.stem_conv, padding=1), ctx)
        return s, s


class NetworkImageNet(_Network):
    aux_pool_stride, aux_bn_768 = 2, False

    def __init__(self, C, num_classes, layers, auxiliary, genotype, in_channels=3):
        super().__init__(C, num_classes, layers, auxiliary, genotype, in_channels)
        p, s = self.params, self.stats
        self.stem0_conv1 = p.declare("stem0.conv1", [C // 2, in_channels, 3, 3])
        self.stem0_bn1 = BatchNorm(p, s, "stem0.bn1", C // 2, affine=True)
        self.stem0_conv2 = p.declare("stem0.conv2", [C, C // 2, 3, 3])
        self.stem0_bn2 = BatchNorm(p, s, "stem0.bn2", C, affine=True)
        self.stem1_conv = p.declare("stem1.conv", [C, C, 3, 3])
        self.stem1_bn = BatchNorm(p, s, "stem1.bn", C, affine=True)
        self._build_cells(C, C, C, True)  # the first cell sees a "reduced" previous cell

    def stem(self, x, ctx):

        h = F.relu(self.stem0_bn1(conv(x, self.stem0_conv1, 2, 1), ctx))
        s0 = self.stem0_bn2(conv(h, self.stem0_conv2, 2, 1), ctx)
        s1 = self.stem1_bn(conv(F.relu(s0), self.stem1_conv, 2, 1), ctx)
        return s0, s1


def build_network(kind, C, num_classes, layers, auxiliary, genotype, in_channels=3):
    """kind: 'cifar' or 'imagenet'."""
    cls = {"cifar": NetworkCIFAR, "imagenet": NetworkImageNet}[kind]
    return cls(C, num_classes, layers, auxiliary, genotype, in_channels)


__all__ = ["NetworkCIFAR", "NetworkImageNet", "EvalCell", "AuxiliaryHead", "DropPath",
           "drop_path_masks", "build_network"]
