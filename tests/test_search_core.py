"""Search core: the fused supernet, the gradient program and the architect.

Everything numerical is checked against an independent computation: a per-edge supernet
written in tests/helpers/search_reference.py, finite differences in float64, numpy optimizers.
"""

import dataclasses

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

paddle = import_paddle()

from darts_paddle.search.architect import OFF, ON, Architect, build_alpha_programs  # noqa: E402
from darts_paddle.search.methods import METHODS, make_method  # noqa: E402
from darts_paddle.nets.params import SharedVars  # noqa: E402
from darts_paddle.search.programs import (  # noqa: E402
    SearchConfig, build_gradient_program, build_weight_step, search_network)
from darts_paddle.search.supernet import ALPHAS, SearchNetwork  # noqa: E402

from tests.helpers import search_reference  # noqa: E402

# hessian_r: the paper's R = 0.01/||v|| is far too coarse for finite differences in a net
# this small (ReLU and max-pool kinks everywhere); 1e-5 makes the Hessian-vector product
# exact to ~1e-9 so the whole step can be compared with finite differences.  The paper's R
# itself is tested by test_second_order_step_is_the_papers_formula.
TINY = SearchConfig(C=4, layers=3, num_classes=5, in_channels=3, image_size=8, epochs=4,
                    unrolled=True, dtype="float64", hessian_r=1e-5)
BATCH = 4


@pytest.fixture(scope="module")
def search():
    return search_reference.make_search(TINY)


def batch(seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((BATCH, 3, 8, 8)),
            rng.integers(0, TINY.num_classes, BATCH).astype(np.int64))


def banks(programs, runner):
    return {b: runner.get(b) for b in programs.network.params.banks}


def alphas(runner):
    return {a: runner.get(a) for a in ALPHAS}


def loss_at(programs, runner, data, alpha=None, weights=None):
    """L(w, alpha) on a batch with training-mode BN, statistics untouched."""
    for name, value in {**(alpha or {}), **(weights or {})}.items():
        runner.set(name, value)
    loss, _ = runner.run(programs["grad"], x=data[0], y=data[1], bn_update=OFF)
    return float(loss)


def test_default_supernet_has_the_published_weight_count():
    assert SearchNetwork(16, 10, 8, 3).params.size == 1_930_618
    # one input channel (Fashion-MNIST): only the stem conv shrinks, by 48 * 2 * 9
    assert SearchNetwork(16, 10, 8, 1).params.size == 1_930_618 - 864


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.slow
def test_gradient_program_stays_small(method):
    """The op count (independent of C and image size) of the default 8-cell supernet."""
    cfg = SearchConfig(C=4, layers=8, image_size=8, method=make_method(method))
    grad = build_gradient_program(search_network(cfg), SharedVars(cfg.dtype),
                                  cfg.method.arch_parameters(), cfg, paddle.static.Program())
    assert len(grad.program.global_block().ops) <= 6500


def test_merging_repeated_ops_changes_no_output(search, monkeypatch):
    """The gradient program as built (Paddle's common-subexpression pass applied) against
    the same program unmerged: the loss and every weight and alpha gradient agree."""
    from darts_paddle.search import programs as search_programs

    programs, runner = search
    monkeypatch.setattr(search_programs, "merge_repeated_ops", lambda prog: prog)
    plain, plain_runner = search_reference.make_search(TINY)
    merged_ops = len(programs["grad"].program.global_block().ops)
    assert merged_ops < 0.9 * len(plain["grad"].program.global_block().ops)
    x, y = batch(5)
    names = [programs.gradient_name(v) for v in [*programs.network.params.banks, *ALPHAS]]
    results = []
    for progs, run in ((programs, runner), (plain, plain_runner)):
        for name, value in {**banks(programs, runner), **alphas(runner)}.items():
            run.set(name, value)
        loss, acc = run.run(progs["grad"], x=x, y=y, bn_update=OFF)
        results.append([loss, acc, *(run.get(n) for n in names)])
    for merged, unmerged in zip(*results):
        np.testing.assert_allclose(merged, unmerged, rtol=1e-12, atol=1e-15)


@pytest.mark.slow
def test_fused_supernet_equals_per_edge_reference(search):
    programs, runner = search
    x, y = batch(2)
    loss, _ = runner.run(programs["grad"], x=x, y=y, bn_update=OFF)
    fused_grads = [runner.get(programs.gradient_name(a)) for a in ALPHAS]

    weights = programs.network.params.unbank(banks(programs, runner))
    ref_loss, ref_grads = search_reference.reference_run(
        weights, programs.network, x, y, alphas(runner))
    assert float(loss) == pytest.approx(ref_loss, rel=1e-10)
    for fused, ref in zip(fused_grads, ref_grads):
        assert np.abs(ref).max() > 1e-4  # a real gradient, not zeros on both sides
        np.testing.assert_allclose(fused, ref, rtol=1e-8, atol=1e-12)


def directions(seed, n=3):
    rng = np.random.default_rng(seed)
    return [{a: rng.standard_normal((14, 8)) for a in ALPHAS} for _ in range(n)]


def directional_fd(f, alpha, d, eps):
    """Central difference along d.  eps is tiny because ReLU and max-pool kinks are dense in
    this small float64 net: a larger step crosses them (measured: 1e-5 is off by 1e-4)."""
    plus = {a: alpha[a] + eps * d[a] for a in ALPHAS}
    minus = {a: alpha[a] - eps * d[a] for a in ALPHAS}
    return (f(plus) - f(minus)) / (2 * eps)


def test_first_order_alpha_gradient_matches_finite_differences(search):
    programs, runner = search
    data = batch(3)
    alpha = alphas(runner)
    runner.run(programs["grad"], x=data[0], y=data[1], bn_update=OFF)
    grad = {a: runner.get(programs.gradient_name(a)) for a in ALPHAS}
    f = lambda a: loss_at(programs, runner, data, alpha=a)  # noqa: E731
    for d in directions(4):
        analytic = sum((grad[a] * d[a]).sum() for a in ALPHAS)
        assert analytic == pytest.approx(directional_fd(f, alpha, d, 1e-7), rel=1e-6)
    runner.set_all(alpha)


def _weight_step_once(programs, runner):
    """One real weight step, so that the momentum buffer the architect reads is not zero."""
    x, y = batch(5)
    runner.run(programs["grad"], x=x, y=y, bn_update=ON)
    runner.run(programs["weight_step"])


def test_second_order_alpha_gradient_matches_finite_differences(search):
    programs, runner = search
    cfg = programs.config
    _weight_step_once(programs, runner)
    train, valid, eta = batch(6), batch(7), 0.05
    w, alpha = banks(programs, runner), alphas(runner)
    m = {b: runner.get(programs.momentum_name(b)) for b in w}
    assert max(np.abs(v).max() for v in m.values()) > 0

    architect = Architect(runner, programs, unrolled=True)
    architect.set_epoch(0, cfg.epochs)
    architect.alpha_gradient(train, valid, eta)
    grad2 = {a: runner.get(programs.gradient_name(a)) for a in ALPHAS}
    d_alpha = architect.unrolled_terms()["d_alpha"]

    def unrolled_val_loss(a):
        """L_val(w'(alpha), alpha) with w' the virtual step, computed here in numpy."""
        loss_at(programs, runner, train, alpha=a, weights=w)
        g = {b: runner.get(programs.gradient_name(b)) for b in w}
        w_virtual = {b: w[b] - eta * (cfg.momentum * m[b] + g[b] + cfg.weight_decay * w[b])
                     for b in w}
        return loss_at(programs, runner, valid, weights=w_virtual)

    for d in directions(8):
        fd = directional_fd(unrolled_val_loss, alpha, d, 1e-7)
        second = sum((grad2[a] * d[a]).sum() for a in ALPHAS)
        first = sum((d_alpha[a] * d[a]).sum() for a in ALPHAS)
        assert second == pytest.approx(fd, rel=1e-4, abs=1e-9)
        # the Hessian term matters: dropping it (the old port's bug) misses the FD value
        assert abs(first - fd) > 100 * abs(second - fd)
    runner.set_all({**w, **alpha})


@pytest.mark.slow
def test_second_order_step_is_the_papers_formula():
    """At the paper's R, each piece is recomputed here from independent gradient passes."""
    programs, runner = search_reference.make_search(dataclasses.replace(TINY, hessian_r=0.01))
    _weight_step_once(programs, runner)
    train, valid, eta = batch(6), batch(7), 0.05
    w = banks(programs, runner)
    architect = Architect(runner, programs, unrolled=True)
    architect.set_epoch(0, TINY.epochs)
    architect.alpha_gradient(train, valid, eta)
    result = {a: runner.get(programs.gradient_name(a)) for a in ALPHAS}
    terms = architect.unrolled_terms()
    d_alpha, v = terms["d_alpha"], terms["v"]
    radius = 0.01 / np.sqrt(sum((v[b] ** 2).sum() for b in w))
    assert terms["R"] == pytest.approx(radius, rel=1e-12)

    def alpha_grad_at(weights):
        loss_at(programs, runner, train, weights=weights)
        return {a: runner.get(programs.gradient_name(a)) for a in ALPHAS}

    g_plus = alpha_grad_at({b: w[b] + radius * v[b] for b in w})
    g_minus = alpha_grad_at({b: w[b] - radius * v[b] for b in w})
    for a in ALPHAS:
        expected = d_alpha[a] - eta * (g_plus[a] - g_minus[a]) / (2 * radius)
        # (g+ - g-) / 2R amplifies round-off by 1 / R: compare at 1e-6 of the largest entry
        np.testing.assert_allclose(result[a], expected, rtol=0, atol=1e-6 * np.abs(expected).max())
        assert np.abs(g_plus[a] - g_minus[a]).max() > 1e-6  # the perturbation reached w


def test_architect_step_leaves_weights_and_bn_statistics_bit_identical(search):
    programs, runner = search
    _weight_step_once(programs, runner)
    before = {n: runner.get(n) for n in [*programs.network.params.banks, "bn.mean", "bn.var"]}
    alpha_before = alphas(runner)
    architect = Architect(runner, programs, unrolled=True)
    architect.set_epoch(0, TINY.epochs)
    architect.step(batch(9), batch(10), eta=0.05)
    for name, value in before.items():
        assert np.array_equal(runner.get(name), value), name
    assert all(not np.array_equal(runner.get(a), alpha_before[a]) for a in ALPHAS)


def test_weight_step_is_clipped_momentum_sgd_with_weight_decay(search):
    programs, runner = search
    cfg = programs.config
    x, y = batch(11)
    runner.run(programs["grad"], x=x, y=y, bn_update=ON)
    w = banks(programs, runner)
    g = {b: runner.get(programs.gradient_name(b)) * 1e3 for b in w}  # large enough to be clipped
    m = {b: runner.get(programs.momentum_name(b)) for b in w}
    runner.set_all({programs.gradient_name(b): g[b] for b in w})
    lr = programs.lr_scheduler()
    runner.run(programs["weight_step"])
    norm = np.sqrt(sum((v ** 2).sum() for v in g.values()))
    assert norm > cfg.grad_clip
    for b in w:
        velocity = cfg.momentum * m[b] + g[b] * cfg.grad_clip / norm + cfg.weight_decay * w[b]
        # Paddle holds mu and lambda as float32 attributes: compare at 1e-6 of the step
        np.testing.assert_allclose(runner.get(b), w[b] - lr * velocity, rtol=0,
                                   atol=1e-6 * lr * np.abs(velocity).max())


@pytest.mark.slow
def test_alpha_step_is_adam_with_weight_decay():
    programs, runner = search_reference.make_search(TINY)
    cfg, rng = programs.config, np.random.default_rng(12)
    a = {n: runner.get(n) for n in ALPHAS}
    m1 = {n: np.zeros_like(a[n]) for n in ALPHAS}
    m2 = {n: np.zeros_like(a[n]) for n in ALPHAS}
    for t in (1, 2, 3):
        g = {n: rng.standard_normal(a[n].shape) for n in ALPHAS}
        runner.set_all({programs.gradient_name(n): g[n] for n in ALPHAS})
        runner.run(programs["alpha_step"])
        for n in ALPHAS:  # torch.optim.Adam(betas=(0.5, 0.999), weight_decay=1e-3)
            grad = g[n] + cfg.arch_weight_decay * a[n]
            m1[n] = 0.5 * m1[n] + 0.5 * grad
            m2[n] = 0.999 * m2[n] + 0.001 * grad ** 2
            denom = np.sqrt(m2[n] / (1 - 0.999 ** t)) + 1e-8
            a[n] = a[n] - cfg.arch_learning_rate * m1[n] / (1 - 0.5 ** t) / denom
            # Paddle keeps beta2 = 0.999 as a float32 attribute: 1 - beta2 is off by 1e-5
            np.testing.assert_allclose(runner.get(n), a[n], rtol=0,
                                       atol=1e-4 * cfg.arch_learning_rate)


@pytest.mark.slow
def test_first_order_search_lowers_the_training_loss():
    programs, runner = search_reference.make_search(dataclasses.replace(TINY, dtype="float32", unrolled=False))
    architect = Architect(runner, programs)
    architect.set_epoch(0, TINY.epochs)
    x, y = batch(13)
    losses = []
    for _ in range(8):
        architect.step((x, y), batch(14), eta=0.025)
        losses.append(architect.weight_step((x, y))[0])
    assert losses[-1] < 0.7 * losses[0]


def test_a_feed_the_program_does_not_declare_is_an_error(search):
    """A misspelt feed is refused, naming it and what the program reads."""
    programs, runner = search
    x, y = batch(1)
    declared = r"\['bn_updat'\] not declared .* \['bn_update', 'x', 'y'\]"
    with pytest.raises(ValueError, match=declared):
        runner.run(programs["grad"], x=x, y=y, bn_update=OFF, bn_updat=OFF)


def test_a_pass_before_set_epoch_is_an_error(search):
    """Every pass's feeds depend on the epoch: the architect refuses to guess it."""
    programs, runner = search
    architect = Architect(runner, programs, unrolled=True)
    with pytest.raises(RuntimeError, match="set_epoch"):
        architect.step(batch(1), batch(2), eta=0.05)
    with pytest.raises(RuntimeError, match="set_epoch"):
        architect.weight_step(batch(1))


def test_programs_built_in_the_wrong_order_fail_loudly():
    """Second order's virtual step reads the weight optimizer's momentum buffers: alpha
    programs built without them, a buffer of their name made before the optimizer, or read
    by name afterwards are errors, not buffers of zeros."""
    cfg = dataclasses.replace(TINY, C=2)
    net, arch = search_network(cfg), cfg.method.arch_parameters()
    shared, startup = SharedVars(cfg.dtype), paddle.static.Program()
    # the shared variables are values of the programs that made them: those must live on
    kept = [build_gradient_program(net, shared, arch, cfg, startup)]
    with pytest.raises(ValueError, match="build the weight step first"):
        build_alpha_programs(net, shared, arch, cfg, startup, velocity={})
    bank, shape = next(iter(net.params.bank_shapes().items()))
    with paddle.static.program_guard(paddle.static.Program(), startup):
        shared.buffer("momentum_" + bank, shape)  # a program reading it by name, first
    with pytest.raises(ValueError, match="before the optimizer that owns it"):
        build_weight_step(net, shared, cfg, startup)

    shared = SharedVars(cfg.dtype)
    kept.append(build_gradient_program(net, shared, arch, cfg, startup))
    step, _, velocity = build_weight_step(net, shared, cfg, startup)
    kept.append(step)
    assert set(velocity) == set(net.params.banks)
    with paddle.static.program_guard(paddle.static.Program(), startup):
        with pytest.raises(ValueError, match="an optimizer's variable"):
            shared.buffer("momentum_" + bank, shape)
    progs, _ = build_alpha_programs(net, shared, arch, cfg, startup, velocity)
    assert "unroll" in progs
