"""NAS-Bench-201's search space (--space nb201): the fused supernet of
search/nb201_supernet.py against the per-edge network of tests/helpers/nb201_reference.py,
written from NAS-Bench-201's definitions (and PC-DARTS's partial channels and edge
normalisation), loss and the gradient of every weight and architecture parameter in
float64; the alpha gradient against finite differences; the derived cell; the weight
count from the paper's definition; the methods and flags the space refuses."""

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

paddle = import_paddle()

from darts_paddle.errors import UserError  # noqa: E402
from darts_paddle.genotype import softmax  # noqa: E402
from darts_paddle.search.architect import OFF  # noqa: E402
from darts_paddle.search.flags import search_parser  # noqa: E402
from darts_paddle.search.loop import method_of  # noqa: E402
from darts_paddle.search.methods import make_method  # noqa: E402
from darts_paddle.search.nb201_supernet import NB201SearchNetwork  # noqa: E402
from darts_paddle.search.programs import SearchConfig  # noqa: E402
from darts_paddle.search.spaces import darts as darts_space, nb201  # noqa: E402

from tests.helpers import nb201_reference, search_reference  # noqa: E402

N, IMAGE, BATCH, CLASSES = 1, 8, 4, 5  # one cell per stage: cells see 8, 4 and 2 pixels
# (method, pc_k, C, input channels): C 8 with k 4 leaves the ops 2 channels, so the
# shuffle really permutes; one-channel images reach the stem too
SEARCHES = {"darts": ("darts", None, 4, 3), "pcdarts-k2": ("pcdarts", 2, 8, 3),
            "pcdarts-k4": ("pcdarts", 4, 8, 1)}
# Paddle 3.3's CPU avg_pool2d gradient scales by 1/(pixels in the window) in float32 even in
# float64 (9 x float32(1/9) = 1 + 7e-9); the fused net's avg_pool_3x3 runs it, the
# reference's (written from the definition) does not: the gradients agree to about 2e-8 of
# their largest entry, not to float64's 1e-16, and a wrong fusion is off by far more.
GRAD_TOL = 2e-7


def make(key):
    method, k, C, in_channels = SEARCHES[key]
    cfg = SearchConfig(C=C, layers=N, num_classes=CLASSES, in_channels=in_channels,
                       image_size=IMAGE, epochs=4, dtype="float64",
                       method=make_method(method, nb201.LAYOUT, **({"pc_k": k} if k else {})))
    return search_reference.make_search(cfg, nb201.build_programs, groups=("alphas", "betas"))


@pytest.fixture(scope="module")
def searches():
    """The tiny fused search of a SEARCHES key, built when first asked for."""
    built = {}

    def get(key):
        if key not in built:
            built[key] = make(key)
        return built[key]
    return get


def batch(seed, in_channels):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((BATCH, in_channels, IMAGE, IMAGE)),
            rng.integers(0, CLASSES, BATCH).astype(np.int64))


def arch_values(programs, runner):
    return {n: runner.get(n) for n in programs.arch.names}


def assert_gradient(ours, ref, name, floor):
    """The fused gradient is the reference's, which is a real one (beyond `floor`)."""
    scale = np.abs(ref).max()
    assert scale > floor, name  # not zeros on both sides
    np.testing.assert_allclose(ours, ref, rtol=0, atol=GRAD_TOL * scale, err_msg=name)


@pytest.mark.parametrize("key", SEARCHES)
@pytest.mark.slow
def test_fused_supernet_is_the_per_edge_network(searches, key):
    programs, runner = searches(key)
    _, k, C, in_channels = SEARCHES[key]
    k = k or 1
    params = programs.network.params
    assert programs.arch.names == (["alphas_normal", "betas_normal"] if k > 1
                                   else ["alphas_normal"])
    arch = arch_values(programs, runner)
    assert arch["alphas_normal"].shape == (6, 5)
    # the 3x3 convs of the 3 edges leaving node 0 of the first cell, C/k channels wide
    assert params["cells.0.from_0.nor_conv_3x3"].shape == (3 * C // k, C // k, 3, 3)

    x, y = batch(2, in_channels)
    loss, _ = runner.run(programs["grad"], x=x, y=y, bn_update=OFF)
    fused = params.unbank({b: runner.get(b) for b in params.banks})
    ref_loss, ref_arch, ref_weights = nb201_reference.reference_run(
        nb201_reference.cut(fused, C, N, k), N, x, y, arch, pc_k=k if k > 1 else None)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-12)

    for name in arch:
        assert_gradient(runner.get(programs.gradient_name(name)), ref_arch[name], name, 1e-4)
    if k > 1:  # node 1 has one input edge: softmax of one beta is 1, whatever its value
        assert not ref_arch["betas_normal"][0] and not runner.get("G_betas_normal")[0]
    # every row of every bank: paste refuses pieces that leave a row out or count it twice
    ours = params.unbank({b: runner.get(programs.gradient_name(b)) for b in params.banks})
    for name, ref in nb201_reference.paste(ref_weights, fused, C, N, k).items():
        assert_gradient(ours[name], ref, name, 1e-5)


def test_alpha_gradient_matches_finite_differences(searches):
    programs, runner = searches("darts")
    x, y = batch(3, SEARCHES["darts"][3])
    alpha = runner.get("alphas_normal")
    runner.run(programs["grad"], x=x, y=y, bn_update=OFF)
    grad = runner.get(programs.gradient_name("alphas_normal"))

    def loss(a):
        runner.set("alphas_normal", a)
        return float(runner.run(programs["grad"], x=x, y=y, bn_update=OFF)[0])
    # eps tiny: ReLU's kinks are dense in a net this small
    eps, rng = 1e-7, np.random.default_rng(4)
    for _ in range(3):
        d = rng.standard_normal(alpha.shape)
        fd = (loss(alpha + eps * d) - loss(alpha - eps * d)) / (2 * eps)
        assert (grad * d).sum() == pytest.approx(fd, rel=1e-6)
    runner.set("alphas_normal", alpha)


# --------------------------------------------------------------------------- the derived cell

def strongest_ops(alphas):
    """NAS-Bench-201's genotype: on every edge the op of the largest softmax(alpha), 'none'
    included."""
    ops = []
    for row in softmax(alphas):
        best = 0
        for col in range(len(row)):
            if row[col] > row[best]:
                best = col
        ops.append(nb201_reference.OPS[best])
    return tuple(ops)


@pytest.mark.parametrize("method, flags", [("darts", {}), ("pcdarts", {"pc_k": 2})])
def test_the_derived_cell_is_every_edges_strongest_op(method, flags):
    m = make_method(method, nb201.LAYOUT, **flags)
    rng = np.random.default_rng(6)

    def values(alphas):
        # PC-DARTS's betas scale whole edges: they cannot change an edge's strongest op
        return {"alphas_normal": alphas, "betas_normal": 3 * rng.standard_normal(6)}

    # rows 0->1; 0->2, 1->2; 0->3, 1->3, 2->3, each winner 1 above noise of 0.1
    winners = ["nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none"]
    alphas = 0.1 * rng.standard_normal((6, 5))
    for row, op in enumerate(winners):
        alphas[row, nb201_reference.OPS.index(op)] += 1
    cell = nb201.derive(m, values(alphas))
    assert nb201.genotype_text(cell) == ("|nor_conv_3x3~0|+|none~0|skip_connect~1|"
                                         "+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|")
    for _ in range(20):
        alphas = 2 * rng.standard_normal((6, 5))
        assert nb201.derive(m, values(alphas)) == strongest_ops(alphas)


# --------------------------------------------------------------------------- the weight count

def papers_weight_count(C, N, classes, in_channels, k=1):
    """NAS-Bench-201's supernet counted from its definition: the stem's 3x3 conv and affine
    BN; per cell 6 edges, each its own 1x1 and 3x3 conv (C/k channels with partial
    channels; no bias: a BN follows; the BNs not affine, the pool and skip weightless);
    per ResNet block c -> 2c two 3x3 convs with affine BNs and the shortcut's 1x1 conv;
    the head's affine BN and linear classifier with bias."""
    def cell(c):
        c //= k
        return 6 * (c * c * 1 * 1 + c * c * 3 * 3)

    def block(c):
        return 2 * c * c * 9 + 2 * 2 * c + 2 * c * 2 * c * 9 + 2 * 2 * c + 2 * c * c

    stem = C * in_channels * 9 + 2 * C
    head = 2 * 4 * C + 4 * C * classes + classes
    return stem + N * (cell(C) + cell(2 * C) + cell(4 * C)) + block(C) + block(2 * C) + head


def test_the_supernet_has_the_papers_weight_count():
    # by hand: 464 stem + 1,612,800 cells + 14,464 + 57,600 blocks + 778 head (xautodl's
    # cell convs add 12 biases of c per cell, which its BNs cancel: 6,720 more)
    assert papers_weight_count(16, 5, 10, 3) == 1_686_106
    assert NB201SearchNetwork(16, 10, 5, 3).params.size == 1_686_106
    # PC-DARTS's k = 4: the cells' convs 4 channels wide at C = 16, 1/16 of their weights
    assert NB201SearchNetwork(16, 10, 5, 3, k=4).params.size == papers_weight_count(
        16, 5, 10, 3, k=4) == 464 + 1_612_800 // 16 + 14_464 + 57_600 + 778


# --------------------------------------------------------------------------- refused

def parse(*argv):
    return search_parser().parse_args(["--space", "nb201", *argv])


@pytest.mark.parametrize("method", ["daas", "dadarts"])
def test_methods_that_choose_a_nodes_inputs_are_refused(method):
    """DAAS and DADARTS keep two inputs per node; NAS-Bench-201's cells keep them all."""
    with pytest.raises(ValueError, match="--space nb201.*use --method darts or pcdarts"):
        make_method(method, nb201.LAYOUT)
    with pytest.raises(UserError, match=f"--method {method} has no meaning in --space nb201"):
        method_of(parse("--method", method))
    assert make_method(method).layout.name == "darts"  # the DARTS space keeps them


def test_the_methods_that_work_take_the_spaces_layout():
    for method, flags in (("darts", {}), ("pcdarts", {"pc_k": 2})):
        assert make_method(method, nb201.LAYOUT, **flags).layout is nb201.LAYOUT


def test_max_skip_is_refused():
    with pytest.raises(UserError, match="--max_skip .* drop it with --space nb201"):
        nb201.check_flags(parse("--max_skip", "2"))
    nb201.check_flags(parse())
    darts_space.check_flags(search_parser().parse_args(["--max_skip", "2"]))  # its own flag
