"""PC-DARTS (darts_paddle/search/methods/pcdarts.py and the partial channels of
search/supernet.py) against its authors' code (yuhuixu1993/PC-DARTS, model_search.py and
train_search.py): the fused supernet against the per-edge network of
tests/helpers/search_reference.py written from their MixedOp (channel split, bypass, max
pool, channel_shuffle) and Cell (softmax of the betas per node), loss and alpha/beta
gradients in float64; the gradients against finite differences; their genotype rule; the
warm-up and the flags."""

import dataclasses

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

paddle = import_paddle()

from darts_paddle import cli  # noqa: E402
from darts_paddle.search.flags import search_parser  # noqa: E402
from darts_paddle.errors import UserError  # noqa: E402
from darts_paddle.genotype import PRIMITIVES, Genotype, softmax  # noqa: E402
from darts_paddle.search.architect import OFF, Architect  # noqa: E402
from darts_paddle.search.methods import make_method  # noqa: E402
from darts_paddle.search.programs import SearchConfig, build_search_programs  # noqa: E402

from tests.helpers import search_reference  # noqa: E402

CELLS = ("normal", "reduce")
# C 8, k 4: the ops of a normal cell see 2 of 8 channels, so the shuffle really permutes;
# 8x8 images: the reduction cells see 8 and 4 pixels (even, for the bypass's 2x2 max pool)
TINY = SearchConfig(C=8, layers=3, num_classes=5, in_channels=3, image_size=8, epochs=10,
                    dtype="float64", method=make_method("pcdarts"))
BATCH = 4


def batch(seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((BATCH, 3, 8, 8)), rng.integers(0, 5, BATCH).astype(np.int64))


@pytest.fixture(scope="module")
def search():
    return search_reference.make_search(TINY, groups=("alphas", "betas"))


def arch_values(programs, runner):
    return {n: runner.get(n) for n in programs.arch.names}


@pytest.mark.slow
def test_partial_channel_supernet_is_the_authors_per_edge_network(search):
    programs, runner = search
    assert programs.arch.names == ["alphas_normal", "alphas_reduce", "betas_normal",
                                   "betas_reduce"]
    assert runner.get("betas_normal").shape == (14,)
    # the ops are C/k wide: a normal cell's sep_conv_3x3 of the 4 edges leaving c_{k-1}
    assert programs.network.params["cells.0.from_1.sep_conv_3x3.dw_1"].shape == (4 * 2, 1, 3, 3)
    x, y = batch(2)
    loss, _ = runner.run(programs["grad"], x=x, y=y, bn_update=OFF)
    names = programs.arch.names
    fused = [runner.get(programs.gradient_name(n)) for n in names]

    banks = programs.network.params.banks
    weights = programs.network.params.unbank({b: runner.get(b) for b in banks})
    ref_loss, ref_grads = search_reference.reference_run(
        weights, programs.network, x, y, arch_values(programs, runner), pc_k=4)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-10)
    for name, ours, ref in zip(names, fused, ref_grads):
        assert np.abs(ref).max() > 1e-4, name  # a real gradient, not zeros on both sides
        np.testing.assert_allclose(ours, ref, rtol=1e-8, atol=1e-12, err_msg=name)


def test_alpha_and_beta_gradients_match_finite_differences(search):
    programs, runner = search
    x, y = batch(3)
    arch = arch_values(programs, runner)
    runner.run(programs["grad"], x=x, y=y, bn_update=OFF)
    grad = {n: runner.get(programs.gradient_name(n)) for n in arch}
    rng = np.random.default_rng(4)

    def loss(values):
        runner.set_all(values)
        return float(runner.run(programs["grad"], x=x, y=y, bn_update=OFF)[0])
    # eps tiny: the kinks of ReLU and max pool are dense in a net this small
    eps = 1e-7
    for group in ("alphas", "betas"):
        d = {n: rng.standard_normal(a.shape) if n.startswith(group) else np.zeros_like(a)
             for n, a in arch.items()}
        fd = (loss({n: arch[n] + eps * d[n] for n in arch})
              - loss({n: arch[n] - eps * d[n] for n in arch})) / (2 * eps)
        analytic = sum((grad[n] * d[n]).sum() for n in arch)
        assert analytic == pytest.approx(fd, rel=1e-5), group
    runner.set_all(arch)


def test_an_odd_size_at_a_reduction_cell_is_one_error():
    """The bypass's 2x2 max pool would not meet the ops' output: 6x6 images reach the
    second reduction cell at 3x3."""
    with pytest.raises(UserError, match="this cell gets 3 pixels"):
        build_search_programs(dataclasses.replace(TINY, image_size=6))


# --------------------------------------------------------------------------- the genotype

def their_genotype(arch):
    """Network.genotype of model_search.py: W = softmax(alpha) row times the edge's
    weights2 (softmax over each node's betas); per node the 2 edges whose largest W but
    'none' is largest (Python's stable sort), each with its op of largest W but 'none'
    (the first on a tie)."""
    none = PRIMITIVES.index("none")
    genes = {}
    for c in CELLS:
        W = softmax(arch[f"alphas_{c}"])
        betas, w2, start = arch[f"betas_{c}"], [], 0
        for n in range(2, 6):
            w2.extend(softmax(betas[start:start + n]))
            start += n
        gene, start = [], 0
        for i in range(4):
            rows = W[start:start + i + 2] * np.array(w2[start:start + i + 2])[:, None]
            edges = sorted(range(i + 2), key=lambda x: -max(rows[x][k] for k in range(8)
                                                              if k != none))[:2]
            for j in edges:
                k_best = None
                for k in range(8):
                    if k != none and (k_best is None or rows[j][k] > rows[j][k_best]):
                        k_best = k
                gene.append((PRIMITIVES[k_best], j))
            start += i + 2
        genes[c] = gene
    return Genotype(genes["normal"], [2, 3, 4, 5], genes["reduce"], [2, 3, 4, 5])


def one_strong_op(op, p):
    """A row of alphas whose softmax gives `op` the weight p and the 7 others (1 - p) / 7."""
    q = np.full(8, (1 - p) / 7)
    q[PRIMITIVES.index(op)] = p
    return np.log(q)


def test_edge_normalisation_changes_the_chosen_edges():
    """Node 1 of the normal cell, worked by hand.  Its inputs' strongest ops: c_{k-2}
    sep_conv_3x3 0.6, c_{k-1} skip_connect 0.5, node 0 max_pool_3x3 0.3; its betas give the
    edges 0.1, 0.3, 0.6.  Times the edge weights: 0.06, 0.15, 0.18, so node 1 keeps node 0
    (max_pool_3x3) and c_{k-1} (skip_connect), where the op weights alone keep c_{k-2} and
    c_{k-1}.  Every other edge is uniform (its first op but 'none' wins, inputs 0 and 1)."""
    arch = {f"alphas_{c}": np.zeros((14, 8)) for c in CELLS}
    arch.update({f"betas_{c}": np.zeros(14) for c in CELLS})
    for row, (op, p) in zip((2, 3, 4), [("sep_conv_3x3", 0.6), ("skip_connect", 0.5),
                                         ("max_pool_3x3", 0.3)]):
        arch["alphas_normal"][row] = one_strong_op(op, p)
    arch["betas_normal"][2:5] = np.log([0.1, 0.3, 0.6])
    pool = "max_pool_3x3"
    uniform = [(pool, 0), (pool, 1)]
    method = make_method("pcdarts")
    g = method.genotype(arch)
    assert g.normal == uniform + [(pool, 2), ("skip_connect", 1)] + uniform + uniform
    assert g.reduce == uniform * 4
    assert g == their_genotype(arch)
    # the op weights alone (plain DARTS's rule) would keep c_{k-2} and c_{k-1}
    assert make_method().genotype(arch).normal[2:4] == [("sep_conv_3x3", 0), ("skip_connect", 1)]
    # the normalised betas, per node (node 0 too), as history.json records them
    betas = method.betas_numpy(arch)["normal"]
    assert [len(b) for b in betas] == [2, 3, 4, 5]
    np.testing.assert_allclose(betas[1], [0.1, 0.3, 0.6], rtol=1e-12)


def test_genotype_is_the_authors_on_random_values():
    rng = np.random.default_rng(5)
    method = make_method("pcdarts")
    for _ in range(20):
        arch = {f"{kind}_{c}": 2 * rng.standard_normal(shape) for c in CELLS
                for kind, shape in (("alphas", (14, 8)), ("betas", (14,)))}
        assert method.genotype(arch) == their_genotype(arch)


# --------------------------------------------------------------------------- warm-up and flags

def test_warm_up_trains_the_weights_alone(search):
    """train_search.py: `if epoch >= 15: architect.step(...)`: no architecture pass and no
    Adam step in the warm-up, the weight step as always; then both alphas and betas move."""
    programs, runner = search
    saved = {n: runner.get(v) for n, v in programs.state_names().items()}
    architect = Architect(runner, programs)
    assert make_method("pcdarts").warmup(10) == 3  # 15 of 50, scaled to the 10 epochs of TINY
    arch_and_adam = [v for n, v in programs.state_names().items()
                     if n in programs.arch.names or n.startswith("adam_")]
    for epoch, updates in ((2, False), (3, True)):
        architect.set_epoch(epoch, TINY.epochs)
        before = {n: runner.get(n) for n in [*arch_and_adam, *programs.network.params.banks]}
        result = architect.step(batch(6), batch(7), eta=0.1)
        architect.weight_step(batch(6))
        assert (result is not None) == updates
        for name in arch_and_adam:
            assert np.array_equal(runner.get(name), before[name]) != updates, (epoch, name)
        assert all(not np.array_equal(runner.get(b), before[b])
                   for b in programs.network.params.banks)
    runner.set_all({v: saved[n] for n, v in programs.state_names().items()})


def parse(*argv):
    parser = search_parser()
    return parser.parse_args(argv), cli.given_flags(parser, list(argv))


def test_a_new_run_takes_the_papers_flags_where_none_are_given():
    args, given = parse("--method", "pcdarts", "--learning_rate", "0.05")
    make_method("pcdarts").set_run_flags(args, given)
    assert (args.batch_size, args.learning_rate, args.learning_rate_min,
            args.arch_learning_rate, args.pc_k, args.warmup_epochs) == (256, 0.05, 0.0, 6e-4, 4, 15)
    args, given = parse("--method", "pcdarts", "--epochs", "4", "--warmup_epochs", "0")
    make_method("pcdarts", warmup_epochs=0).set_run_flags(args, given)
    assert args.warmup_epochs == 0 and args.epochs == 4
    assert [make_method("pcdarts").warmup(e) for e in (1, 3, 4, 10, 50, 100)] == [0, 0, 1, 3, 15, 30]
    args, given = parse()  # other methods keep DARTS's defaults
    make_method().set_run_flags(args, given)
    assert (args.batch_size, args.learning_rate, args.pc_k) == (64, 0.025, None)


@pytest.mark.parametrize("argv, words", [
    (("--method", "pcdarts", "--init_channels", "6"), "--init_channels 6 does not split"),
    (("--method", "pcdarts", "--epochs", "3", "--warmup_epochs", "3"), "leaves none of the 3"),
])
def test_flags_that_cannot_work_are_refused(argv, words):
    args, given = parse(*argv)
    method = make_method("pcdarts", pc_k=args.pc_k, warmup_epochs=args.warmup_epochs)
    with pytest.raises(ValueError, match=words):
        method.set_run_flags(args, given)


def test_pcdarts_flags_belong_to_pcdarts():
    with pytest.raises(ValueError, match="--pc_k: PC-DARTS's, not DARTS's"):
        make_method("darts", pc_k=2)
    with pytest.raises(ValueError, match="drop the DADARTS flags"):
        make_method("pcdarts", topk_on_alphas=True)
    assert make_method("pcdarts", pc_k=None).partial_channels == 4
    assert make_method("darts", pc_k=None, warmup_epochs=None).partial_channels == 1
