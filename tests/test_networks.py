"""Evaluation networks: published parameter counts, and cells against a numpy reference."""

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

paddle = import_paddle()

import genotypes as G  # noqa: E402
from darts_paddle.nets.networks import (EvalCell, NetworkCIFAR, NetworkImageNet,  # noqa: E402
                                   build_network, drop_path_masks)
from darts_paddle.nets.ops import BN_EPS, Context  # noqa: E402
from darts_paddle.nets.params import ParamStore, SharedVars, StatsStore  # noqa: E402
from darts_paddle.runner import Runner  # noqa: E402
from tests.helpers.numpy_ops import np_avg_pool, np_batch_norm, np_conv, np_max_pool, relu  # noqa: E402

# docs/algorithm.md section 6: trainable parameters without the auxiliary head
PUBLISHED = {"DARTS_V1": (3_169_414, 4_510_432), "DARTS_V2": (3_349_342, 4_718_752),
             "DARTS_PADDLE": (3_767_302, 5_235_904)}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_equal_the_published_ones(name):
    cifar, imagenet = PUBLISHED[name]
    genotype = getattr(G, name)
    assert NetworkCIFAR(36, 10, 20, False, genotype).params.size == cifar
    assert NetworkImageNet(48, 1000, 14, False, genotype).params.size == imagenet


def test_auxiliary_heads_match_the_published_totals():
    cifar = NetworkCIFAR(36, 10, 20, True, G.DARTS_V2)
    imagenet = NetworkImageNet(48, 1000, 14, True, G.DARTS_V2)
    assert cifar.params.size + cifar.aux_params.size == 3_825_768
    assert imagenet.params.size + imagenet.aux_params.size == 5_979_528
    # the auxiliary head does not change the network's own count
    assert cifar.params.size == 3_349_342


def test_five_step_genotypes_build_with_their_concat_widths():
    nasnet = NetworkCIFAR(8, 10, 5, False, G.NASNet)
    amoeba = NetworkCIFAR(8, 10, 5, False, G.AmoebaNet)
    assert [c.steps for c in nasnet.cells] == [5] * 5
    assert [c.multiplier for c in nasnet.cells] == [5, 3, 5, 3, 5]  # normal 5, reduce 3 states
    assert [c.multiplier for c in amoeba.cells] == [3] * 5
    # the ops outside the search space declare their weights: 1x7 and 7x1 convs, 7x7 kernels
    shapes = {e.shape[1:] for e in amoeba.params.entries}
    assert {(16, 1, 7), (16, 7, 1), (1, 7, 7)} <= shapes


def test_one_input_channel_only_shrinks_the_stem():
    three = NetworkCIFAR(36, 10, 20, False, G.DARTS_V2).params.size
    one = NetworkCIFAR(36, 10, 20, False, G.DARTS_V2, in_channels=1).params.size
    assert three - one == 108 * 2 * 9


def test_drop_path_counts_every_non_identity_op():
    net = NetworkCIFAR(8, 10, 3, False, G.DARTS_V2)
    # DARTS_V2 normal: 2 of 8 ops are identities; reduce: 3 skip_connects from node 0
    # (stride 1, identities) and 5 max pools.  Cells: reduce, reduce, reduce for 3 layers
    # at L/3 = 1 and 2L/3 = 2, cell 0 normal.
    assert net.drop_paths == 6 + 5 + 5
    # a stride-2 skip_connect (FactorizedReduce) is dropped too: DARTS_PADDLE's reduce cell
    # has one (on input 1) beside 3 max pools and a dil conv, and 3 identities
    paddle_net = NetworkCIFAR(8, 10, 3, False, G.DARTS_PADDLE)
    assert [c.drop_paths for c in paddle_net.cells] == [7, 5, 5]


def test_drop_path_masks_keep_the_expectation():
    rng = np.random.default_rng(0)
    masks = drop_path_masks(rng, 50, 400, 0.3)
    assert masks.shape == (50, 400, 1, 1, 1) and masks.dtype == np.float32
    assert set(np.unique(masks)) == {0.0, np.float32(1 / 0.7)}
    assert abs((masks > 0).mean() - 0.7) < 0.01
    assert abs(masks.mean() - 1.0) < 0.02
    assert np.all(drop_path_masks(rng, 3, 4, 0.0) == 1.0)


# --------------------------------------------------------------------------- numpy reference

class NumpyCell:
    """The cell computed from the genotype and the named weights, op by op, in float64."""

    def __init__(self, weights, stats, genotype, reduction, reduction_prev, training):
        self.w, self.stats, self.training = weights, stats, training
        self.pairs = genotype.reduce if reduction else genotype.normal
        self.concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self.reduction, self.reduction_prev = reduction, reduction_prev

    def bn(self, x, name):
        return np_batch_norm(x, self.w[name + ".weight"], self.w[name + ".bias"], BN_EPS,
                             None if self.training else self.stats[name])

    def factorized_reduce(self, x, name):
        x = relu(x)
        a = np_conv(x, self.w[name + ".conv_1"], 2)
        b = np_conv(x[:, :, 1:, 1:], self.w[name + ".conv_2"], 2)
        return self.bn(np.concatenate([a, b], 1), name + ".bn")

    def dil(self, x, name, k, stride, d):
        h = np_conv(relu(x), self.w[name + ".dw"], stride, d * (k // 2), d, groups=x.shape[1])
        return self.bn(np_conv(h, self.w[name + ".pw"]), name + ".bn")

    def op(self, x, op, name, stride):
        if op == "skip_connect":
            return x if stride == 1 else self.factorized_reduce(x, name)
        if op == "max_pool_3x3":
            return np_max_pool(x, stride)
        if op == "avg_pool_3x3":
            return np_avg_pool(x, stride)
        k = int(op[-1])
        if op.startswith("sep_conv"):
            return self.dil(self.dil(x, name + ".1", k, stride, 1), name + ".2", k, 1, 1)
        if op.startswith("dil_conv"):
            return self.dil(x, name, k, stride, 2)
        assert op == "conv_7x1_1x7"
        h = np_conv(relu(x), self.w[name + ".conv_1x7"], (1, stride), (0, 3))
        return self.bn(np_conv(h, self.w[name + ".conv_7x1"], (stride, 1), (3, 0)), name + ".bn")

    def __call__(self, s0, s1, masks):
        if self.reduction_prev:
            s0 = self.factorized_reduce(s0, "c.preprocess0")
        else:
            s0 = self.bn(np_conv(relu(s0), self.w["c.preprocess0.conv"]), "c.preprocess0.bn")
        s1 = self.bn(np_conv(relu(s1), self.w["c.preprocess1.conv"]), "c.preprocess1.bn")
        states, used = [s0, s1], 0
        for i in range(len(self.pairs) // 2):
            node = 0
            for k in (2 * i, 2 * i + 1):
                op, j = self.pairs[k]
                stride = 2 if self.reduction and j < 2 else 1
                h = self.op(states[j], op, f"c.ops.{k}.{op}", stride)
                if masks is not None and not (op == "skip_connect" and stride == 1):
                    h = h * masks[used]
                    used += 1
                node = node + h
            states.append(node)
        assert masks is None or used == len(masks)
        return np.concatenate([states[j] for j in self.concat], 1)


CELLS = [  # genotype, reduction, reduction_prev, training (drop path on in training)
    ("DARTS_PADDLE", False, False, False),
    ("DARTS_PADDLE", True, True, True),  # stride-2 skip_connect, dil_conv_5x5, preprocess FR
    ("DARTS_V2", False, True, True),
    ("AmoebaNet", True, False, False),  # conv_7x1_1x7, sep_conv_7x7, avg pool, concat [3, 4, 6]
    ("NASNet", False, False, True),  # 5 nodes, 5 states concatenated
]


@pytest.mark.parametrize("name,reduction,reduction_prev,training", CELLS)
def test_cell_equals_numpy_reference(name, reduction, reduction_prev, training):
    genotype, C, batch = getattr(G, name), 4, 3
    size = 8 if reduction else 4  # keep the 7x7 kernels' padding meaningful, the test fast
    params, stats = ParamStore("t"), StatsStore("t_bn")
    cell = EvalCell(params, stats, "c", genotype, 6, 5, C, reduction, reduction_prev)
    s0_size = 2 * size if reduction_prev else size
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        s0 = paddle.static.data("s0", [-1, 6, s0_size, s0_size], "float64")
        s1 = paddle.static.data("s1", [-1, 5, size, size], "float64")
        shared = SharedVars("float64")
        params.materialize(shared)
        stats.materialize(shared)
        drop = None
        if training:
            from darts_paddle.nets.networks import DropPath

            mask_feed = paddle.static.data("m", [cell.drop_paths, -1, 1, 1, 1], "float64")
            drop = DropPath(mask_feed)
        out = cell(s0, s1, Context(training=training), drop)
    runner = Runner(paddle.CPUPlace(), dtype="float64")
    runner.run_startup(startup)
    rng = np.random.default_rng(5)
    banks = {b: rng.uniform(-0.5, 0.5, shape) for b, shape in params.bank_shapes().items()}
    mean, var = rng.standard_normal(stats.size), rng.uniform(0.5, 2.0, stats.size)
    runner.set_all({**banks, "t_bn.mean": mean, "t_bn.var": var})
    feeds = {"s0": rng.standard_normal((batch, 6, s0_size, s0_size)),
             "s1": rng.standard_normal((batch, 5, size, size))}
    masks = None
    if training:
        masks = drop_path_masks(rng, cell.drop_paths, batch, 0.5).astype(np.float64)
        assert 0 < masks.mean() and (masks == 0).any()  # some samples really dropped
        feeds["m"] = masks
    from darts_paddle.runner import Prog

    got = runner.run(Prog(main, list(feeds), [out]), **feeds)[0]
    weights = params.unbank(banks)
    bn_stats = {e.name: (mean[e.offset:e.offset + e.channels], var[e.offset:e.offset + e.channels])
                for e in stats.entries}
    ref = NumpyCell(weights, bn_stats, genotype, reduction, reduction_prev, training)
    expected = ref(feeds["s0"], feeds["s1"], masks)
    assert got.shape == expected.shape
    assert got.shape[1] == C * cell.multiplier
    # Paddle's training-mode BN computes the variance less exactly than numpy: 1e-9 relative
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-8)


def test_multiply_adds_count_convolutions_and_matmuls_per_image():
    from darts_paddle.runner import Prog
    from darts_paddle.train.programs import multiply_adds

    main = paddle.static.Program()
    with paddle.static.program_guard(main, paddle.static.Program()):
        x = paddle.static.data("x", [-1, 4, 9, 9], "float32")
        dw = paddle.static.create_parameter([4, 1, 3, 3], "float32")
        pw = paddle.static.create_parameter([6, 4, 1, 1], "float32")
        fc = paddle.static.create_parameter([6, 5], "float32")
        h = paddle.nn.functional.conv2d(x, dw, stride=2, padding=1, groups=4)  # 5x5 out
        h = paddle.nn.functional.conv2d(h, pw)
        out = paddle.matmul(paddle.mean(h, axis=[2, 3]), fc)
    expected = 4 * 5 * 5 * 9 + 6 * 5 * 5 * 4 + 6 * 5
    assert multiply_adds(Prog(main, ["x"], [out])) == expected


def test_build_network_rejects_a_broken_genotype():
    from darts_paddle.errors import UserError

    broken = G.DARTS_V2._replace(normal=[("sep_conv_9x9", 0)] * 8)
    with pytest.raises(UserError, match="unknown op"):
        build_network("cifar", 8, 10, 3, False, broken)


def test_auxiliary_head_on_too_small_maps_is_a_user_error():
    from darts_paddle.errors import UserError
    from darts_paddle.train.programs import TrainConfig, build_train_programs

    cfg = TrainConfig(C=8, layers=2, image_size=16, auxiliary=True)  # 4x4 maps after cell 1
    with pytest.raises(UserError, match="auxiliary head needs 8x8"):
        build_train_programs(cfg, G.DARTS_V2)


def test_auxiliary_head_with_one_reduction_cell_blames_the_layer_count():
    from darts_paddle.errors import UserError

    # one cell is both reduction cells: its 16x16 maps are no image-size problem
    for kind in "cifar", "imagenet":
        with pytest.raises(UserError) as info:
            build_network(kind, 8, 10, 1, True, G.DARTS_V2)
        message = str(info.value)
        assert message.startswith("--auxiliary: the auxiliary head reads the maps of the second")
        assert "--layers 1 has one (cell 0): use --layers 2 or more" in message
        assert "image" not in message
    assert build_network("cifar", 8, 10, 2, True, G.DARTS_V2).aux_index == 1
