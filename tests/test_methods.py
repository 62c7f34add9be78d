"""DAAS and DADARTS (darts_paddle/methods.py): every piece against numpy written here from
REFERENCE.md section 9, gradients against finite differences in float64, and a few steps
of each method on a tiny supernet."""

import math

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

paddle = import_paddle()

from darts_paddle import methods  # noqa: E402
from darts_paddle.architect import OFF, ON, Architect  # noqa: E402
from darts_paddle.genotype import PRIMITIVES, derive_cell, softmax  # noqa: E402
from darts_paddle.methods import MethodConfig  # noqa: E402
from darts_paddle.programs import SearchConfig, build_search_programs  # noqa: E402
from darts_paddle.runner import Runner  # noqa: E402


def run_program(build, feeds, dtype="float64"):
    """Build a small program with `build(inputs) -> [outputs]` and run it once."""
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        inputs = {k: paddle.static.data(k, list(np.shape(v)), dtype) for k, v in feeds.items()}
        outputs = build(inputs)
    exe = paddle.static.Executor(paddle.CPUPlace())
    return exe.run(main, feed=feeds, fetch_list=outputs, scope=paddle.static.Scope())


# --------------------------------------------------------------------------- soft top-k

def topk_numpy(x, k, t):
    """sigmoid((x + tau) t) with tau from scipy's root finder (independent of our bisection)."""
    from scipy.optimize import brentq
    from scipy.special import expit

    tau = brentq(lambda tau: expit((x + tau) * t).sum() - k, -x.max() - 50 / t, -x.min() + 50 / t,
                 xtol=1e-14)
    return expit((x + tau) * t)


def topk_program(x, k, t, valid, weights):
    """TopK of every row (thresholds from the host's bisection), and the gradient of
    sum(weights * TopK) with respect to x."""
    def build(v):
        v["x"].stop_gradient = False
        mask = methods.soft_topk(v["x"], v["u"], v["t"], v["valid"])
        objective = paddle.sum(mask * v["w"])
        return [mask, paddle.static.gradients([objective], [v["x"]])[0]]
    u = methods.topk_offsets(x, k, t, valid)
    return run_program(build, {"x": x, "u": u, "t": np.array([t]), "valid": valid, "w": weights})


@pytest.mark.parametrize("t", [1.0, 10.0, 200.0])
def test_soft_topk_sums_to_k_and_matches_a_root_finder(t):
    rng = np.random.default_rng(0)
    x = softmax(rng.standard_normal((3, 7)))
    k = np.array([[1.0], [2.0], [2.0]])
    valid = np.ones((3, 7))
    valid[2, 4:] = 0  # a node with 4 inputs, padded to 7
    mask, _ = topk_program(x, k, t, valid, np.ones((3, 7)))
    np.testing.assert_allclose(mask.sum(1), k[:, 0], atol=1e-9)
    assert np.all(mask[2, 4:] == 0)
    for row in range(3):
        n = int(valid[row].sum())
        np.testing.assert_allclose(mask[row, :n], topk_numpy(x[row, :n], k[row, 0], t), atol=1e-8)
    if t == 200.0:  # hot: nearly the hard top-k
        assert mask[0].max() > 0.9 and np.sort(mask[1])[-2] > 0.5


@pytest.mark.parametrize("t", [2.0, 50.0])
def test_soft_topk_gradient_matches_finite_differences(t):
    rng = np.random.default_rng(1)
    x = softmax(rng.standard_normal((2, 5)))
    k, valid, w = np.array([[1.0], [2.0]]), np.ones((2, 5)), rng.standard_normal((2, 5))
    _, grad = topk_program(x, k, t, valid, w)
    eps = 1e-6
    for i, j in [(0, 0), (0, 3), (1, 1), (1, 4)]:
        d = np.zeros_like(x)
        d[i, j] = eps
        f = lambda z: (w * np.stack([topk_numpy(z[r], k[r, 0], t) for r in range(2)])).sum()  # noqa: E731
        assert grad[i, j] == pytest.approx((f(x + d) - f(x - d)) / (2 * eps), rel=1e-5, abs=1e-8)


# --------------------------------------------------------------------------- hard mask

def hand_alpha():
    """Alphas whose genotype is known by construction (edges node by node)."""
    alpha = np.zeros((14, 8))
    alpha[:, 0] = 5.0  # 'none' strongest everywhere: it must never be picked
    picks = {0: (4, 2.0), 1: (7, 1.0),                 # node 0: both inputs
             2: (3, 0.5), 3: (5, 3.0), 4: (1, 2.5),    # node 1: keep edges 3 and 4
             5: (6, 4.0), 6: (2, 0.1), 7: (4, 3.9), 8: (5, 0.2),  # node 2: keep 5 and 7
             9: (1, 1.0), 10: (2, 1.1), 11: (3, 1.2), 12: (6, 0.9), 13: (7, 1.3)}  # node 3: 11, 13
    for edge, (op, value) in picks.items():
        alpha[edge, op] = value
    expected = np.zeros((14, 8))
    for edge in (0, 1, 3, 4, 5, 7, 11, 13):
        expected[edge, picks[edge][0]] = 1.0
    return alpha, expected


def brute_force_mask(p):
    """One-hot of the 2 strongest edges per node (by their best non-'none' weight), each
    with its best non-'none' op: an exhaustive search over edge pairs."""
    from itertools import combinations

    mask, start = np.zeros_like(p), 0
    for node in range(4):
        rows = range(start, start + node + 2)
        pair = max(combinations(rows, 2), key=lambda e: p[list(e), 1:].max(1).sum())
        for e in pair:
            mask[e, 1 + np.argmax(p[e, 1:])] = 1
        start += node + 2
    return mask


def test_hard_discretization_picks_the_genotype_edges_and_ops():
    alpha, expected = hand_alpha()
    other = np.random.default_rng(5).standard_normal((14, 8))  # the reduce cell's
    masks = MethodConfig(hd_on_weights=True).alpha_knobs(
        {"alphas_normal": alpha, "alphas_reduce": other}, {"hd": np.ones(1)})["hard"]
    np.testing.assert_array_equal(masks[:14], expected)
    np.testing.assert_array_equal(masks[14:], brute_force_mask(softmax(other)))
    # and it is the genotype's parse
    starts = [0, 2, 5, 9]
    chosen = {(op, starts[i // 2] + j) for i, (op, j) in enumerate(derive_cell(softmax(alpha)))}
    assert chosen == {(PRIMITIVES[o], e) for e, o in zip(*np.nonzero(expected))}


def topk_factor_numpy(p, t):
    """TopK_edge(k=1) x TopK_node(k=2) as a [14, 8] factor, from section 9 with scipy's
    root finder: each edge over its 7 non-'none' ops; each node 1..3 over its edges'
    strongest non-'none' weight; node 0's edges and the 'none' column keep factor 1."""
    factor, start = np.ones_like(p), 0
    for node in range(4):
        rows = list(range(start, start + node + 2))
        for e in rows:
            factor[e, 1:] = topk_numpy(p[e, 1:], 1, t)
        if node > 0:
            factor[rows] *= topk_numpy(p[rows, 1:].max(1), 2, t)[:, None]
        start += node + 2
    return factor


@pytest.mark.parametrize("t", [1.0, 30.0])
def test_topk_masks_of_a_cell_match_section_9(t):
    rng = np.random.default_rng(8)
    arch = {f"alphas_{c}": rng.standard_normal((14, 8)) for c in methods.CELLS}
    u = MethodConfig(topk_on_alphas=True).alpha_knobs(arch, {"temperature": [t]})["topk_u"]
    F = paddle.nn.functional

    def build(v):
        soft = {c: F.softmax(v[f"alphas_{c}"], -1) for c in methods.CELLS}
        return list(methods._topk_masks(soft, v["t"], v["u"]).values())
    masks = run_program(build, {**arch, "t": np.array([t]), "u": u})
    for c, mask in zip(methods.CELLS, masks):
        np.testing.assert_allclose(mask, topk_factor_numpy(softmax(arch[f"alphas_{c}"]), t),
                                   rtol=1e-7, atol=1e-12)


# --------------------------------------------------------------------------- DAAS

def daas_numpy(alpha, beta, w1, w2):
    """W [14, 8] and the DAAS loss term, straight from REFERENCE.md section 9."""
    x = 2 * alpha
    p = softmax(np.where(x < -1, x ** 3, x))
    sizes = [3, 4, 5]
    parts = np.split(beta, np.cumsum(sizes)[:-1])
    edge = [1.0, 1.0]
    node_terms = 0.0
    for n, b in zip(sizes, parts):
        q = softmax(np.minimum(b, 1))
        edge += list(q * n)
        node_terms += 0.2 * (np.minimum(b, 1)[b > 0].sum() - 2) ** 2 - (q * np.log(q)).sum()
    h_alpha = -(p * np.log(p)).sum(1).mean()
    W = np.concatenate([np.zeros((14, 1)), p], 1) * np.array(edge)[:, None]
    return W, h_alpha, node_terms


def test_daas_weights_and_loss_match_the_formulas():
    rng = np.random.default_rng(2)
    arch = {f"alphas_{c}": rng.standard_normal((14, 7)) for c in methods.CELLS}
    # betas around the initial values, some above 1 and one below 0
    arch.update({f"betas_{c}": rng.uniform(-0.3, 1.4, 12) for c in methods.CELLS})
    w = np.array([0.3, 0.7])
    daas = MethodConfig("daas")

    def build(v):
        weights, extra = methods.arch_terms(daas, v, {"daas_w": v["daas_w"]})
        return [weights["normal"], weights["reduce"], extra]
    W_n, W_r, loss = run_program(build, {**arch, "daas_w": w})
    h, nodes = 0.0, 0.0
    for c, W in (("normal", W_n), ("reduce", W_r)):
        W_ref, h_c, nodes_c = daas_numpy(arch[f"alphas_{c}"], arch[f"betas_{c}"], *w)
        np.testing.assert_allclose(W, W_ref, rtol=1e-12, atol=1e-20)
        h, nodes = h + h_c, nodes + nodes_c
    assert float(loss) == pytest.approx(0.1 * 0.3 * (0.7 * h + 4 * nodes), rel=1e-12)


def test_daas_schedules():
    w = MethodConfig.daas_loss_weights
    assert w(0, 50) == (0.0, 0.0)
    assert w(6, 50) == (6 / 49, 0.0)  # epoch 7: alpha still frozen
    assert w(7, 50) == (7 / 49, 0.0)  # epoch 8: log42(1) = 0
    assert w(20, 50)[1] == pytest.approx(math.log(14, 42))
    assert w(49, 50) == (1.0, pytest.approx(math.log(43, 42)))
    daas = MethodConfig("daas")
    assert [daas.alpha_lr_factor(e) for e in (0, 6, 7, 49)] == [0, 0, 1, 1]
    assert MethodConfig().alpha_lr_factor(0) == 1
    assert set(daas.knobs(3, 50)) == {"daas_w"} and MethodConfig().knobs(3, 50) == {}


def test_temperature_ramp_and_recipe():
    m = MethodConfig("dadarts", topk_temperature=10.0)
    assert m.dal_on_alphas and m.topk_on_alphas and m.hd_on_weights and not m.topk_on_weights
    assert [m.temperature(e, 5) for e in range(5)] == [10.0, 57.5, 105.0, 152.5, 200.0]
    assert MethodConfig(topk_on_alphas=True, topk_temperature=3.0).temperature(4, 5) == 3.0
    late = MethodConfig(hd_on_weights=True, hd_start=3)
    assert [float(late.knobs(e, 5)["hd"][0]) for e in range(4)] == [0, 0, 1, 1]
    with pytest.raises(ValueError):
        MethodConfig("daas", hd_on_weights=True)


def test_daas_initial_values():
    values = MethodConfig("daas").initial_values(np.random.default_rng(0))
    assert values["alphas_normal"].shape == (14, 7) and np.abs(values["alphas_normal"]).max() < 1e-3
    beta = values["betas_reduce"]
    np.testing.assert_allclose(beta, [0.666] * 3 + [0.5] * 4 + [0.4] * 5, atol=1e-3)


def test_daas_genotype_follows_beta():
    arch = {f"alphas_{c}": np.zeros((14, 7)) for c in methods.CELLS}
    arch["alphas_normal"][:, 3] = 1.0  # sep_conv_3x3 (column 3 of the 7 ops) everywhere
    arch["alphas_normal"][2, 0] = 9.0  # edge c_{k-2} -> node 1 has the strongest op ...
    beta = np.array([0.1, 0.9, 0.8,  0.5, 0.5, 0.9, 0.95,  0.1, 0.2, 0.9, 0.3, 0.8])
    arch.update({"betas_normal": beta, "betas_reduce": beta})
    g = MethodConfig("daas").genotype(arch)
    # ... but its beta is the lowest of node 1: node 1 keeps inputs 1 and 2
    assert sorted(j for _, j in g.normal[2:4]) == [1, 2]
    assert sorted(j for _, j in g.normal[4:6]) == [2, 3]
    assert sorted(j for _, j in g.normal[6:8]) == [2, 4]
    assert {op for op, _ in g.normal} == {"sep_conv_3x3"}


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
    for name, shape in method.arch_shapes().items():  # far from uniform
        if name.startswith("alphas"):
            runner.set(name, rng.standard_normal(shape))
    return programs, runner


def arch_gradient_vs_fd(programs, runner, knobs):
    """The alphas' gradient along a random direction against central differences of the
    loss; the knobs that follow alpha are recomputed at every point, as the architect does."""
    data = batch(3)
    names = programs.config.arch_names
    method = programs.config.method
    arch = {n: runner.get(n) for n in names}
    feeds = dict(x=data[0], y=data[1], bn_update=OFF, **knobs)
    runner.run(programs["grad"], **feeds, **method.alpha_knobs(arch, knobs))
    grad = {n: runner.get("G_" + n) for n in names}
    rng = np.random.default_rng(4)
    d = {n: rng.standard_normal(a.shape) for n, a in arch.items()}

    def loss(sign, eps=1e-7):
        moved = {n: arch[n] + sign * eps * d[n] for n in names}
        runner.set_all(moved)
        return float(runner.run(programs["grad"], **feeds, **method.alpha_knobs(moved, knobs))[0])
    fd = (loss(1) - loss(-1)) / 2e-7
    runner.set_all(arch)
    analytic = sum((grad[n] * d[n]).sum() for n in names)
    assert analytic == pytest.approx(fd, rel=1e-5)
    return grad


def test_dadarts_architect_gradient_matches_finite_differences():
    method = MethodConfig("dadarts", topk_temperature=5.0)
    programs, runner = make_search(method)
    knobs = {**method.knobs(1, 4), "phase": ON}
    arch_gradient_vs_fd(programs, runner, knobs)
    # the weight pass (phase 0) runs the one-hot genotype: alphas get no gradient there
    arch = {n: runner.get(n) for n in programs.config.arch_names}
    runner.run(programs["grad"], x=batch(3)[0], y=batch(3)[1], bn_update=OFF,
               **{**knobs, "phase": OFF}, **method.alpha_knobs(arch, knobs))
    assert np.abs(runner.get("G_alphas_normal")).max() == 0


def test_dal_adds_its_gradient_to_the_architect_only():
    method = MethodConfig(dal_on_alphas=True, dal_factor=0.5)
    programs, runner = make_search(method)
    x, y = batch(5)
    grads = {}
    arch = {n: runner.get(n) for n in programs.config.arch_names}
    for phase in (ON, OFF):
        runner.run(programs["grad"], x=x, y=y, bn_update=OFF, phase=phase,
                   **method.alpha_knobs(arch, {}))
        grads[float(phase[0])] = runner.get("G_alphas_normal")
    p = softmax(arch["alphas_normal"])
    target = brute_force_mask(p)
    # d/dalpha of 0.5 * mean((p - onehot)^2): through the softmax Jacobian, by hand
    g_p = 0.5 * 2 * (p - target) / p.size
    expected = p * (g_p - (g_p * p).sum(1, keepdims=True))
    np.testing.assert_allclose(grads[1.0] - grads[0.0], expected, rtol=1e-7, atol=1e-13)


def test_daas_gradient_matches_finite_differences():
    method = MethodConfig("daas")
    programs, runner = make_search(method)
    grad = arch_gradient_vs_fd(programs, runner, method.knobs(20, 50))
    assert np.abs(grad["betas_normal"]).max() > 0


@pytest.mark.parametrize("method, unrolled", [
    (MethodConfig("daas"), False),
    (MethodConfig("dadarts"), True),
    (MethodConfig(topk_on_weights=True, topk_temperature=2.0), False),
])
def test_each_method_searches_with_falling_loss(method, unrolled):
    programs, runner = make_search(method, dtype="float32", unrolled=unrolled)
    architect = Architect(runner, programs, unrolled=unrolled)
    train, valid = batch(6), batch(7)
    names = programs.config.arch_names
    if method.daas:  # epoch 1: beta trains, alpha's learning rate is 0
        architect.set_knobs(method.knobs(0, 10))
        before = {n: runner.get(n) for n in names}
        architect.step(train, valid, eta=0.025)
        assert np.array_equal(runner.get("alphas_normal"), before["alphas_normal"])
        assert not np.array_equal(runner.get("betas_normal"), before["betas_normal"])
    for _ in range(8):
        programs.next_epoch()
    architect.set_knobs(method.knobs(8, 10))
    before = {n: runner.get(n) for n in names}
    losses = []
    for _ in range(6):
        architect.step(train, valid, eta=0.025)
        losses.append(architect.weight_step(train)[0])
    assert losses[-1] < losses[0]
    assert all(np.abs(runner.get(n) - before[n]).max() > 0 for n in names)
