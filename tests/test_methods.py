"""DAAS and DADARTS (darts_paddle/search/methods/) against references written in this file from
the authors' code, read with its layout: DAAS from sunsmarterjie/DAAS (cnn/MinEntropyLoss.py,
cnn/model_search.py, cnn/dimension.py), DADARTS from vascofor2000/epe-darts-integration
(epe_darts/search_cnn.py, functional.py, architect.py, controller.py): per-node lists of
[inputs, ops] matrices, their op order ('none' last), float64.  Gradients are also checked
against finite differences, and each method runs a few steps on a tiny supernet."""

import math
from itertools import combinations

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import expit

from darts_paddle.runtime import import_paddle

paddle = import_paddle()

from darts_paddle.search.architect import OFF, Architect  # noqa: E402
from darts_paddle.genotype import PRIMITIVES, softmax  # noqa: E402
from darts_paddle.search.methods import ARCH, HESSIAN, UNROLL, WEIGHTS, make_method  # noqa: E402
from darts_paddle.search.methods import daas, topk  # noqa: E402
from darts_paddle.search.programs import SearchConfig, build_search_programs  # noqa: E402
from darts_paddle.runner import Runner  # noqa: E402

F = paddle.nn.functional
CELLS = ("normal", "reduce")


def run_program(build, feeds, dtype="float64"):
    """Build a small program with `build(inputs) -> [outputs]` and run it once."""
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        inputs = {k: paddle.static.data(k, list(np.shape(v)), dtype) for k, v in feeds.items()}
        outputs = build(inputs)
    exe = paddle.static.Executor(paddle.CPUPlace())
    return exe.run(main, feed=feeds, fetch_list=outputs, scope=paddle.static.Scope())


# --------------------------------------------------------------------------- the authors' layout

# epe_darts/ops.py, DARTS: 'none' last
THEIR_OPS = ['sep_conv_3x3', 'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5',
             'avg_pool_3x3', 'max_pool_3x3', 'skip_connect', 'none']
TO_THEIRS = [PRIMITIVES.index(op) for op in THEIR_OPS]  # our column of each of their ops


def to_nodes(matrix):
    """Our [14, 8] (edges node by node, our op order) -> their list of [i + 2, 8] per node."""
    m, nodes, start = np.asarray(matrix)[:, TO_THEIRS], [], 0
    for i in range(4):
        nodes.append(m[start:start + i + 2])
        start += i + 2
    return nodes


def from_nodes(nodes):
    """Their per-node list -> our [14, 8]."""
    m = np.concatenate(nodes)
    out = np.empty_like(m)
    out[:, TO_THEIRS] = m
    return out


def their_topk(xs, k, t):
    """TopK.apply(xs, k, t) of functional.py for xs [b, n]: sigmoid((x + tau) t) per row with
    sum k.  tau from scipy's root finder here; at t = 0 no tau exists and their 64-step
    bisection ends with every sigmoid(0) = 0.5."""
    out = []
    for x in np.atleast_2d(xs):
        if t == 0:
            out.append(np.full_like(x, 0.5))
            continue
        tau = brentq(lambda tau: expit((x + tau) * t).sum() - k, -x.max() - 50 / t,
                     -x.min() + 50 / t, xtol=1e-15)
        out.append(expit((x + tau) * t))
    return np.array(out)


def their_topk_backward(xs, k, t, grad_output):
    """TopK.backward of functional.py: v = sigmoid'((x + tau) t), s = sum v,
    grad = grad_output * v - sum(grad_output * v) v / s (no factor t)."""
    p = their_topk(xs, k, t)
    v = p * (1 - p)
    uv = grad_output * v
    return uv - uv.sum(1, keepdims=True) * v / v.sum(1, keepdims=True)


def their_topk_weights(weights, t):
    """SearchCNNController.topk, option 1 (the default): weights * TopK_edge * TopK_node."""
    out = []
    for w in weights:
        edge = their_topk(w, 1, t)
        node = their_topk(w.reshape(1, -1), 2, t).reshape(w.shape)
        out.append(w * edge * node)
    return out


def their_hard(weights):
    """SearchCNNController.hard_discretization: per node, the top-1 op of each edge, and a
    one-hot on the 2 edges whose top-1 weight is largest."""
    out = []
    for w in weights:
        hd = np.zeros_like(w)
        for e in np.argsort(-w.max(1))[:2]:
            hd[e, w[e].argmax()] = 1
        out.append(hd)
    return out


def their_dal(weights):
    """discretization_additional_loss: the normal cell's nodes, MSE each, averaged."""
    return np.mean([np.mean((w - h) ** 2) for w, h in zip(weights, their_hard(weights))])


def our_soft(arch):
    return {c: softmax(arch[f"alphas_{c}"]) for c in CELLS}


def random_arch(seed, none_strongest=()):
    """Alphas [14, 8] per cell; on the edges listed, 'none' is the strongest op."""
    rng = np.random.default_rng(seed)
    arch = {f"alphas_{c}": rng.standard_normal((14, 8)) for c in CELLS}
    for e in none_strongest:
        arch["alphas_normal"][e, 0] = 4.0
    return arch


def arch_weights(method, arch, pass_feeds, epoch_feeds=None):
    """The method's W of both cells and its extra loss, for the given pass's feeds."""
    epoch_feeds = dict(epoch_feeds or {})
    feeds = {**arch, **epoch_feeds, **method.alpha_feeds(arch, epoch_feeds), **pass_feeds}
    names = sorted(feeds)
    shapes = method.feed_shapes(training=True)

    def build(v):
        fed = {k: v[k] for k in shapes}
        weights, extra = method.op_weights({n: v[n] for n in arch}, fed)
        return [weights["normal"], weights["reduce"]] + ([extra] if extra is not None else [])
    return run_program(build, {n: feeds[n] for n in names})


# --------------------------------------------------------------------------- soft top-k

def topk_program(x, k, t, valid, weights, exact=False):
    """Our TopK of every row (thresholds from the host) and the gradient of
    sum(weights * TopK) with respect to x."""
    def build(v):
        v["x"].stop_gradient = False
        mask = topk.soft_topk(v["x"], v["tau"], v["t"], v["valid"], exact)
        objective = paddle.sum(mask * v["w"])
        return [mask, paddle.static.gradients([objective], [v["x"]])[0]]
    tau = topk.thresholds(x, k, t, valid)
    return run_program(build, {"x": x, "tau": tau, "t": np.array([t]), "valid": valid,
                               "w": weights})


@pytest.mark.parametrize("t", [0.0, 1.0, 10.0, 200.0])
def test_soft_topk_is_the_authors_topk(t):
    rng = np.random.default_rng(0)
    x = softmax(rng.standard_normal((3, 8)))
    k = np.array([[1.0], [2.0], [2.0]])
    valid = np.ones((3, 8))
    valid[2, 5:] = 0  # a row of 5, padded to 8
    mask, _ = topk_program(x, k, t, valid, np.ones((3, 8)))
    assert np.all(mask[2, 5:] == 0)
    for row in range(3):
        n = int(valid[row].sum())
        np.testing.assert_allclose(mask[row, :n], their_topk(x[row, :n], k[row, 0], t)[0],
                                   atol=1e-9)
    if t == 0.0:  # the first epoch of the linear ramp
        assert np.all(mask[valid > 0] == 0.5)
    else:
        np.testing.assert_allclose(mask.sum(1), k[:, 0], atol=1e-9)


@pytest.mark.parametrize("t", [0.0, 2.0, 50.0])
def test_soft_topk_gradient_is_the_authors_backward(t):
    rng = np.random.default_rng(1)
    x = softmax(rng.standard_normal((2, 6)))
    k, valid, w = np.array([[1.0], [2.0]]), np.ones((2, 6)), rng.standard_normal((2, 6))
    _, grad = topk_program(x, k, t, valid, w)
    expected = np.concatenate([their_topk_backward(x[r:r + 1], k[r, 0], t, w[r:r + 1])
                               for r in range(2)])
    np.testing.assert_allclose(grad, expected, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("t", [2.0, 50.0])
def test_exact_topk_gradient_matches_finite_differences(t):
    rng = np.random.default_rng(1)
    x = softmax(rng.standard_normal((2, 5)))
    k, valid, w = np.array([[1.0], [2.0]]), np.ones((2, 5)), rng.standard_normal((2, 5))
    _, grad = topk_program(x, k, t, valid, w, exact=True)
    f = lambda z: (w * np.concatenate([their_topk(z[r], k[r, 0], t) for r in range(2)])).sum()  # noqa: E731
    eps = 1e-6
    for i, j in [(0, 0), (0, 3), (1, 1), (1, 4)]:
        d = np.zeros_like(x)
        d[i, j] = eps
        assert grad[i, j] == pytest.approx((f(x + d) - f(x - d)) / (2 * eps), rel=1e-5, abs=1e-8)
    # the authors' gradient is the exact one without its factor t
    _, theirs = topk_program(x, k, t, valid, w)
    np.testing.assert_allclose(grad, t * theirs, rtol=1e-9)


@pytest.mark.parametrize("t", [0.0, 1.0, 30.0])
def test_topk_weights_of_both_cells_are_the_authors(t):
    """'none' strongest on some edges, and node 0 under the node top-k, as theirs."""
    arch = random_arch(8, none_strongest=(0, 3, 9))
    method = make_method(topk_on_alphas=True)
    W_n, W_r = arch_weights(method, arch, method.pass_feeds(ARCH, 0), {"temperature": [t]})
    for c, W in zip(CELLS, (W_n, W_r)):
        expected = from_nodes(their_topk_weights(to_nodes(softmax(arch[f"alphas_{c}"])), t))
        np.testing.assert_allclose(W, expected, rtol=1e-7, atol=1e-13)
    if t == 30.0:  # node 0 is under the node top-k too: without it, W would differ
        node0 = to_nodes(softmax(arch["alphas_normal"]))[0]
        without = from_nodes([node0 * their_topk(node0, 1, t)] + to_nodes(W_n)[1:])
        assert np.abs(W_n - without)[:2].max() > 0.05


# --------------------------------------------------------------------------- hard discretization

def test_hard_discretization_is_the_authors_with_none():
    arch = random_arch(5, none_strongest=(0, 3, 9, 13))
    hard = make_method(hd_on_weights=True).alpha_feeds(arch, {})["hard"]
    for cell, rows in zip(CELLS, np.split(hard, 2)):
        expected = from_nodes(their_hard(to_nodes(softmax(arch[f"alphas_{cell}"]))))
        np.testing.assert_array_equal(rows, expected)
    assert hard[[0, 3], 0].tolist() == [1.0, 1.0]  # 'none' kept where it is the top op
    # an exhaustive search over edge pairs agrees: 2 edges per node, best top-1 sum
    p, start = softmax(arch["alphas_reduce"]), 0
    for node in range(4):
        rows = range(start, start + node + 2)
        pair = max(combinations(rows, 2), key=lambda e: p[list(e)].max(1).sum())
        assert set(np.nonzero(hard[14:][list(rows)].sum(1))[0] + start) == set(pair)
        start += node + 2


def test_topk_wins_over_hard_in_the_weight_pass():
    arch = random_arch(3)
    method = make_method(topk_on_weights=True, hd_on_weights=True)
    epoch_feeds = {"temperature": [4.0]}
    assert {k: float(v[0]) for k, v in method.pass_feeds(WEIGHTS, 0).items()} == \
        {"use_topk": 1.0, "use_hd": 1.0}
    W_n, _ = arch_weights(method, arch, method.pass_feeds(WEIGHTS, 0), epoch_feeds)
    expected = from_nodes(their_topk_weights(to_nodes(softmax(arch["alphas_normal"])), 4.0))
    np.testing.assert_allclose(W_n, expected, rtol=1e-7, atol=1e-13)
    hd_only = make_method(hd_on_weights=True)
    W_n, _ = arch_weights(hd_only, arch, hd_only.pass_feeds(WEIGHTS, 0))
    np.testing.assert_array_equal(W_n, from_nodes(their_hard(to_nodes(softmax(arch["alphas_normal"])))))


# --------------------------------------------------------------------------- which pass uses what

def test_pass_switches_follow_the_authors_architect_and_controller():
    """virtual_step: plain softmax (topk/hd_on_virtualstep default off); L_val(w') and the
    finite-difference passes: topk_on_alphas; DAL in L_val(w') only; the weight step and
    validation: topk_on_weights, else hd_on_weights from hd_start (0-based)."""
    m = make_method("dadarts", hd_start=3)
    table = {kind: {k: float(v[0]) for k, v in m.pass_feeds(kind, 2).items()}
             for kind in (UNROLL, ARCH, HESSIAN, WEIGHTS)}
    assert table == {UNROLL: {"use_topk": 0, "use_hd": 0, "use_dal": 0},
                     ARCH: {"use_topk": 1, "use_hd": 0, "use_dal": 1},
                     HESSIAN: {"use_topk": 1, "use_hd": 0, "use_dal": 0},
                     WEIGHTS: {"use_topk": 0, "use_hd": 0, "use_dal": 0}}
    assert [float(m.pass_feeds(WEIGHTS, e)["use_hd"][0]) for e in range(5)] == [0, 0, 0, 1, 1]
    assert make_method(hd_start=2).hd_on_weights  # a start epoch switches it on, as theirs
    assert make_method().pass_feeds(ARCH, 0) == {}


def test_temperature_ramp_and_recipe():
    m = make_method("dadarts", topk_temperature=10.0)
    assert m.dal_on_alphas and m.topk_on_alphas and m.hd_on_weights and not m.topk_on_weights
    # controller.py: linear_temperature_max * epoch / max_epochs, epoch 0-based
    assert [m.temperature(e, 5) for e in range(5)] == [0.0, 40.0, 80.0, 120.0, 160.0]
    assert m.temperature(49, 50) == 196.0
    assert make_method(topk_on_alphas=True, topk_temperature=3.0).temperature(4, 5) == 3.0
    with pytest.raises(ValueError):
        make_method("daas", hd_on_weights=True)


# --------------------------------------------------------------------------- DAL

def test_dal_is_the_authors_on_the_normal_cell_only():
    arch = random_arch(11, none_strongest=(2, 6))
    method = make_method(dal_on_alphas=True, dal_factor=0.7)
    *_, dal = arch_weights(method, arch, method.pass_feeds(ARCH, 0))
    expected = 0.7 * their_dal(to_nodes(softmax(arch["alphas_normal"])))
    assert float(dal) == pytest.approx(expected, rel=1e-12)
    *_, off = arch_weights(method, arch, method.pass_feeds(HESSIAN, 0))
    assert float(off) == 0.0


# --------------------------------------------------------------------------- DAAS

def their_daas(alpha, beta_nodes, epoch):
    """MinEntropyLoss.forward without the cross-entropy, and the cell's op and edge weights
    of model_search.py, for one cell: (ops [14, 7], edge factors [14], loss2, loss3)."""
    def streng_func(t):
        x = 2 * t
        return np.where(x < -1, x ** 3, x)
    ops = softmax(streng_func(alpha))
    loss2 = -(ops * np.log(ops)).sum()  # the whole [14, 7] matrix
    loss3 = 0.0
    edge = [1.0, 1.0]
    for i, b in zip((3, 4, 5), beta_nodes):  # s3, s4, s5: weights2[i - 3] * i
        m = np.minimum(b, 1)  # streng_func2
        loss3 += 0.2 * (m[m > 0].sum() - 2) ** 2
        q = softmax(m)
        loss3 -= (q * np.log(q)).sum()
        edge += list(q * i)
    return ops, np.array(edge), loss2, loss3


def their_weights(epoch):
    """dimension.py: linear(epoch) and log_(epoch), EP = 50, E = 8, epoch 1-based."""
    linear = 1 / (50 - 1) * (epoch - 1)
    log_ = 0 if epoch < 8 else math.log(epoch - 8 + 1, 50 - 8)
    return linear, log_


def test_daas_weights_and_loss_are_the_authors():
    rng = np.random.default_rng(2)
    arch = {f"alphas_{c}": rng.standard_normal((14, 7)) for c in CELLS}
    # betas around the initial values: some above 1 (three in node 3), one below 0
    arch.update({f"betas_{c}": rng.uniform(-0.3, 1.4, 12) for c in CELLS})
    arch["betas_normal"][7:10] = [1.2, 1.5, 1.1]
    method = make_method("daas")
    epoch = 20  # 1-based, as the authors' loop
    w1, w2 = their_weights(epoch)
    W_n, W_r, loss = arch_weights(method, arch, {}, method.epoch_feeds(epoch - 1, 50))
    loss2 = loss3 = 0.0
    for c, W in (("normal", W_n), ("reduce", W_r)):
        beta = np.split(arch[f"betas_{c}"], [3, 7])
        ops, edge, l2, l3 = their_daas(arch[f"alphas_{c}"], beta, epoch)
        np.testing.assert_allclose(W[:, 0], 0.0)
        np.testing.assert_allclose(W[:, 1:], ops * edge[:, None], rtol=1e-12, atol=1e-20)
        loss2, loss3 = loss2 + l2, loss3 + l3
    assert float(loss) == pytest.approx(0.1 * w1 * (w2 * loss2 + 4 * loss3), rel=1e-12)


def test_daas_schedules_are_the_authors_at_50_epochs():
    for e in range(50):
        assert daas.loss_weights(e, 50) == pytest.approx(their_weights(e + 1),
                                                                      abs=1e-15)
    daas_method = make_method("daas")
    # train_search.py: alpha's Adam group has lr 0 until epoch == interval (8, 1-based)
    assert [daas_method.alpha_lr_factor(e) for e in (0, 6, 7, 49)] == [0, 0, 1, 1]
    assert make_method().alpha_lr_factor(0) == 1
    assert set(daas_method.epoch_feeds(3, 50)) == {"daas_w"} and make_method().epoch_feeds(3, 50) == {}


def test_daas_initial_values():
    values = make_method("daas").arch_parameters().initial_values(np.random.default_rng(0))
    assert values["alphas_normal"].shape == (14, 7) and np.abs(values["alphas_normal"]).max() < 1e-3
    beta = values["betas_reduce"]
    np.testing.assert_allclose(beta, [0.666] * 3 + [0.5] * 4 + [0.4] * 5, atol=1e-3)


DAAS_OPS = PRIMITIVES[1:]


def their_daas_genotype(alpha, beta_nodes):
    """Network.genotype of model_search.py for one cell: _sift_beta zeroes the raw alphas of
    the lowest-beta inputs (stable ascending sort of the raw betas), then _parse: per node the
    2 edges with the largest softmax weight, each with its best op."""
    alpha = alpha.copy()
    offset = 2
    for drop, b in zip((1, 2, 3), beta_nodes):
        order = sorted(range(len(b)), key=lambda x: b[x])
        for j in order[:drop]:
            alpha[offset + j] = 0
        offset += len(b)
    W, gene, start = softmax(alpha), [], 0
    for i in range(4):
        rows = W[start:start + i + 2]
        for j in sorted(range(i + 2), key=lambda x: -max(rows[x]))[:2]:
            gene.append((DAAS_OPS[int(np.argmax(rows[j]))], j))
        start += i + 2
    return gene


def test_daas_genotype_is_the_authors():
    rng = np.random.default_rng(4)
    method = make_method("daas")
    tied = 0
    for trial in range(12):
        arch = {f"alphas_{c}": rng.standard_normal((14, 7)) for c in CELLS}
        arch.update({f"betas_{c}": rng.uniform(0.2, 1.6, 12) for c in CELLS})
        arch["betas_normal"][7:12] = [1.3, 0.2, 1.1, 1.6, 0.3]  # node 3: three betas >= 1
        g = method.genotype(arch)
        for c, ours in (("normal", g.normal), ("reduce", g.reduce)):
            theirs = their_daas_genotype(arch[f"alphas_{c}"], np.split(arch[f"betas_{c}"], [3, 7]))
            # the same two (op, input) pairs per node (their order within a node is moot)
            assert [sorted(ours[2 * n:2 * n + 2]) for n in range(4)] == \
                [sorted(theirs[2 * n:2 * n + 2]) for n in range(4)]
        tied += {j for _, j in g.normal[6:8]} == {0, 3}  # the two highest raw betas
    assert tied == 12  # softmax(min(beta, 1)) would tie inputs 0, 2, 3 of node 3


# --------------------------------------------------------------------------- on a supernet

TINY = dict(C=4, layers=3, num_classes=5, in_channels=3, image_size=8, epochs=4)
BATCH = 4


def batch(seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((BATCH, 3, 8, 8)), rng.integers(0, 5, BATCH).astype(np.int64))


def make_search(method, dtype="float64", unrolled=False):
    cfg = SearchConfig(**TINY, dtype=dtype, unrolled=unrolled, method=method)
    programs = build_search_programs(cfg)
    runner = Runner(paddle.CPUPlace(), dtype=dtype)
    runner.run_startup(programs.startup)
    runner.set_all(programs.initial_values(np.random.default_rng(0)))
    rng = np.random.default_rng(1)
    for name in programs.arch.group("alphas"):  # far from uniform
        runner.set(name, rng.standard_normal(runner.get(name).shape))
    return programs, runner


def arch_gradient_vs_fd(programs, runner, feeds):
    """The alphas' gradient along a random direction against central differences of the
    loss; the feeds that follow alpha are recomputed at every point, as the architect does."""
    data = batch(3)
    names = programs.arch.names
    method = programs.config.method
    arch = {n: runner.get(n) for n in names}
    feeds = dict(x=data[0], y=data[1], bn_update=OFF, **feeds)
    runner.run(programs["grad"], **feeds, **method.alpha_feeds(arch, feeds))
    grad = {n: runner.get(programs.gradient_name(n)) for n in names}
    rng = np.random.default_rng(4)
    d = {n: rng.standard_normal(a.shape) for n, a in arch.items()}

    def loss(sign, eps=1e-7):
        moved = {n: arch[n] + sign * eps * d[n] for n in names}
        runner.set_all(moved)
        return float(runner.run(programs["grad"], **feeds, **method.alpha_feeds(moved, feeds))[0])
    fd = (loss(1) - loss(-1)) / 2e-7
    runner.set_all(arch)
    analytic = sum((grad[n] * d[n]).sum() for n in names)
    assert analytic == pytest.approx(fd, rel=1e-5)
    return grad


@pytest.mark.parametrize("t, exact", [(1.0, False), (5.0, True)])
def test_dadarts_architect_gradient_matches_finite_differences(t, exact):
    """At t = 1 the authors' top-k gradient is the exact one; at other t only the exact
    gradient (--topk_exact_gradient) is the loss's derivative."""
    method = make_method("dadarts", topk_temperature=t, topk_exact_gradient=exact)
    method.linear_temperature_increase = False  # the recipe ramps t; fix it here
    programs, runner = make_search(method)
    arch_gradient_vs_fd(programs, runner, {"temperature": np.array([t]),
                                           **method.pass_feeds(ARCH, 1)})
    # the weight pass runs the hard one-hot: alphas get no gradient there
    arch = {n: runner.get(n) for n in programs.arch.names}
    feeds = {"temperature": np.array([t]), **method.pass_feeds(WEIGHTS, 1)}
    runner.run(programs["grad"], x=batch(3)[0], y=batch(3)[1], bn_update=OFF, **feeds,
               **method.alpha_feeds(arch, feeds))
    assert np.abs(runner.get(programs.gradient_name("alphas_normal"))).max() == 0


def test_the_unrolled_pass_runs_plain_softmax_weights():
    """w' comes from the gradient of the plain-softmax network (the authors' virtual_step):
    the DADARTS program's UNROLL pass equals plain DARTS's pass, loss and weight gradients."""
    results = []
    for method in (make_method(), make_method("dadarts")):
        programs, runner = make_search(method, unrolled=True)
        architect = Architect(runner, programs, unrolled=True)
        architect.set_epoch(2, 4)
        loss = architect.gradient(batch(9), OFF, UNROLL)[0]
        results.append((loss, [runner.get(programs.gradient_name(b)) for b in programs.network.params.banks]))
        if method.name == "dadarts":  # and the architect's pass on the same batch does differ
            assert architect.gradient(batch(9), OFF, ARCH)[0] != pytest.approx(loss, rel=1e-6)
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-13)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-15)


def test_dal_adds_its_gradient_to_the_architect_pass_only():
    method = make_method(dal_on_alphas=True, dal_factor=0.5)
    programs, runner = make_search(method)
    architect = Architect(runner, programs)
    architect.set_epoch(0, 4)
    x = batch(5)
    grads = {}
    for kind in (ARCH, HESSIAN):
        architect.gradient(x, OFF, kind)
        grads[kind] = {c: runner.get(programs.gradient_name(f"alphas_{c}")) for c in CELLS}
    p = to_nodes(softmax(runner.get("alphas_normal")))
    # d/dalpha of 0.5 * mean_nodes mean((p - onehot)^2), through each node's softmax rows
    g_nodes = [0.5 * 2 * (pn - hn) / pn.size / len(p) for pn, hn in zip(p, their_hard(p))]
    g_p = from_nodes(g_nodes)
    soft = softmax(runner.get("alphas_normal"))
    expected = soft * (g_p - (g_p * soft).sum(1, keepdims=True))
    np.testing.assert_allclose(grads[ARCH]["normal"] - grads[HESSIAN]["normal"], expected,
                               rtol=1e-7, atol=1e-13)
    np.testing.assert_allclose(grads[ARCH]["reduce"], grads[HESSIAN]["reduce"], rtol=1e-12,
                               atol=1e-15)


def test_daas_gradient_matches_finite_differences():
    method = make_method("daas")
    programs, runner = make_search(method)
    grad = arch_gradient_vs_fd(programs, runner, method.epoch_feeds(20, 50))
    assert np.abs(grad["betas_normal"]).max() > 0


@pytest.mark.parametrize("method, unrolled", [
    (make_method("daas"), False),
    (make_method("dadarts"), True),
    (make_method(topk_on_weights=True, topk_temperature=2.0), False),
])
def test_each_method_searches_with_falling_loss(method, unrolled):
    programs, runner = make_search(method, dtype="float32", unrolled=unrolled)
    architect = Architect(runner, programs, unrolled=unrolled)
    train, valid = batch(6), batch(7)
    names = programs.arch.names
    if method.name == "daas":  # epoch 1: beta trains, alpha's learning rate is 0
        architect.set_epoch(0, 10)
        before = {n: runner.get(n) for n in names}
        architect.step(train, valid, eta=0.025)
        assert np.array_equal(runner.get("alphas_normal"), before["alphas_normal"])
        assert not np.array_equal(runner.get("betas_normal"), before["betas_normal"])
    for _ in range(8):
        programs.next_epoch()
    architect.set_epoch(8, 10)
    before = {n: runner.get(n) for n in names}
    losses = []
    for _ in range(6):
        architect.step(train, valid, eta=0.025)
        losses.append(architect.weight_step(train)[0])
    assert losses[-1] < losses[0]
    assert all(np.abs(runner.get(n) - before[n]).max() > 0 for n in names)
