"""The PyTorch search step of the side-by-side benchmark (bench/torch_reference/architect.py) computes what
our Architect computes: from the same weights, alphas and momentum buffers (carried over
with convert_torch), both give the same first- and second-order alpha gradients, in
float64 on a tiny supernet; and the alphas' Hessian behind lambda_max (search/collapse.py)
is the one PyTorch's double backward gives, as RobustDARTS computes it.  Two independent
implementations: PyTorch autograd on the published module tree, and our fused static
programs."""

import numpy as np
import pytest

from darts_paddle.runtime import configure

configure()
torch = pytest.importorskip("torch")

from darts_paddle.runtime import import_paddle  # noqa: E402

paddle = import_paddle()

from darts_paddle.convert_torch import convert as convert_torch  # noqa: E402
from darts_paddle.search import state as search_state  # noqa: E402
from bench.torch_reference import architect as ta  # noqa: E402
from bench.torch_reference import models as tm  # noqa: E402
from darts_paddle.search import collapse  # noqa: E402
from darts_paddle.search.architect import Architect  # noqa: E402
from darts_paddle.search.programs import SearchConfig, build_search_programs  # noqa: E402
from darts_paddle.runner import Runner  # noqa: E402
from darts_paddle.search.supernet import ALPHAS  # noqa: E402

pytestmark = pytest.mark.torch

C, LAYERS, SIZE, BATCH, ETA = 4, 3, 8, 4, 0.025


def batches(seed):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((BATCH, 3, SIZE, SIZE)), rng.integers(0, 10, BATCH))
            for _ in range(3)]


def torch_side(seed):
    torch.manual_seed(seed)
    net = tm.search_network(C, 10, LAYERS).double()
    with torch.no_grad():  # far from uniform, so that a wrong op weighting cannot hide
        for alpha in net.arch_parameters():
            alpha.normal_()
    return net


def paddle_side(net):
    """Our programs holding the torch network's weights and alphas."""
    state = {k: v.numpy() for k, v in net.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    state.update({k: a.detach().numpy() for k, a in zip(ALPHAS, net.arch_parameters())})
    target = convert_torch.Target("search", C, LAYERS, 10, 3, False, "cifar10")
    arrays, _ = convert_torch.convert_state(state, target)
    programs = build_search_programs(SearchConfig(C=C, layers=LAYERS, image_size=SIZE,
                                                  unrolled=True, dtype="float64"))
    runner = Runner(paddle.CPUPlace(), dtype="float64")
    runner.run_startup(programs.startup)
    runner.set_all(programs.initial_values(np.random.default_rng(0)))
    search_state.init_state(programs, runner, arrays, "the torch network")
    return programs, runner


def as_torch(batch):
    return torch.from_numpy(batch[0]), torch.from_numpy(batch[1])


@pytest.mark.parametrize("unrolled", [False, True])
@pytest.mark.slow
def test_torch_architect_gives_our_alpha_gradient(unrolled):
    net = torch_side(1)
    programs, runner = paddle_side(net)
    ours = Architect(runner, programs, unrolled)
    ours.set_epoch(0, 1)
    warm, train, valid = batches(2)
    # one weight step first on both sides: w' then depends on the momentum buffers
    optimizer = ta.weight_optimizer(net)
    ta.weight_step(net, optimizer, as_torch(warm))
    ours.weight_step(warm)
    theirs = ta.TorchArchitect(net)
    theirs.backward(as_torch(train), as_torch(valid), ETA, optimizer, unrolled)
    ours.step(train, valid, ETA)  # also takes an Adam step: the alpha gradient stays readable
    for name, alpha in zip(ALPHAS, net.arch_parameters()):
        expected = alpha.grad.numpy()
        assert np.abs(expected).max() > 1e-3
        # not float64's 1e-15: the warm-up step differs a little (Paddle's learning rate is
        # a float32 variable: 2e-8 here; PyTorch clips by max_norm / (norm + 1e-6), Paddle
        # by max_norm / norm: up to 8e-6 here)
        np.testing.assert_allclose(runner.get(programs.gradient_name(name)), expected, rtol=1e-5,
                                   atol=1e-6 * np.abs(expected).max())
    if unrolled:  # the Hessian term is really there (not dropped, as in an earlier port)
        first = ta.TorchArchitect(net)
        first.backward(as_torch(train), as_torch(valid), ETA, optimizer, False)
        assert not np.allclose(net.alphas_normal.grad.numpy(), runner.get(programs.gradient_name("alphas_normal")),
                               rtol=1e-3)


def test_search_step_moves_every_alpha_and_weight():
    net = torch_side(3)
    optimizer = ta.weight_optimizer(net)
    architect = ta.TorchArchitect(net)
    before_w = [w.detach().clone() for w in net.weight_parameters()]
    before_a = [a.detach().clone() for a in net.arch_parameters()]
    train, valid, _ = batches(4)
    ta.search_step(architect, optimizer, as_torch(train), as_torch(valid), unrolled=True)
    assert all(not torch.equal(a, b) for a, b in zip(net.arch_parameters(), before_a))
    assert all(not torch.equal(w, b) for w, b in zip(net.weight_parameters(), before_w))


def torch_alpha_hessian(net, x, y):
    """The whole Hessian of the cross-entropy in both alphas (flattened, normal first), BN
    in training mode: double back-propagation, as RobustDARTS's Analyzer.compute_Hw."""
    alphas = net.arch_parameters()
    loss = torch.nn.functional.cross_entropy(net(x), y)
    gradient = torch.cat([g.reshape(-1) for g in
                          torch.autograd.grad(loss, alphas, create_graph=True)])
    rows = [torch.cat([r.reshape(-1) for r in torch.autograd.grad(g, alphas, retain_graph=True)])
            for g in gradient]
    return torch.stack(rows).numpy()


@pytest.mark.slow
def test_lambda_max_is_the_largest_eigenvalue_of_pytorchs_double_backward_hessian():
    """H u to 1e-6 relatively, and lambda_max with the search's defaults (10 Lanczos steps,
    the alphas' weight decay 1e-3 on the diagonal as RobustDARTS adds it) within 1e-3 of
    eigvalsh of the whole 224 x 224 Hessian, or within twice the estimate's own bound."""
    net = torch_side(5)
    programs, runner = paddle_side(net)
    batch = batches(6)[0]
    hessian = torch_alpha_hessian(net, *as_torch(batch))
    np.testing.assert_allclose(hessian, hessian.T, rtol=0, atol=1e-10 * np.abs(hessian).max())
    architect = Architect(runner, programs)
    architect.set_epoch(0, 1)
    product = collapse.AlphaHessian(architect, [batch])
    for u in np.random.default_rng(0).standard_normal((2, hessian.shape[0])):
        expected = hessian @ u
        assert np.linalg.norm(product(u) - expected) <= 1e-6 * np.linalg.norm(expected)
    exact = np.linalg.eigvalsh(hessian + 1e-3 * np.eye(hessian.shape[0]))
    assert exact[0] < 0 < exact[-1]
    estimate = collapse.lambda_max(architect, [batch], 10, seed=0, weight_decay=1e-3)
    assert estimate.iterations <= 10 and estimate.passes == estimate.iterations
    assert abs(estimate.value - exact[-1]) <= max(1e-3 * exact[-1], 2 * estimate.bound)
