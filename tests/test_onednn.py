"""The opt-in oneDNN depthwise convolutions (onednn.py) against Paddle's default kernels.

docs/paddle.md section 8: oneDNN kernels can return wrong gradients without an error, so
every kind of depthwise conv the networks use (kernel 3 and 5, stride 1 and 2, dilation 1 and 2) is
compared op by op, and a whole supernet gradient pass is compared with a float64 run of
the default kernels: oneDNN in float32 must be as close to it as the default kernels in
float32 are."""

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

paddle = import_paddle()

import paddle.nn.functional as F  # noqa: E402

from darts_paddle import onednn  # noqa: E402
from darts_paddle.search.architect import OFF  # noqa: E402
from darts_paddle.errors import UserError  # noqa: E402
from darts_paddle.runner import Prog  # noqa: E402
from darts_paddle.search.programs import SearchConfig, build_search_programs  # noqa: E402
from darts_paddle.runner import Runner  # noqa: E402
from darts_paddle.search.supernet import ALPHAS  # noqa: E402
from darts_paddle import runtime  # noqa: E402

# (channels, size, kernel, stride, dilation): sep/dil convs at stride 1 and 2
KINDS = [(8, 12, 3, 1, 1), (8, 12, 5, 1, 1), (8, 12, 3, 1, 2), (8, 12, 5, 1, 2),
         (6, 9, 3, 2, 1), (6, 10, 5, 2, 1), (6, 10, 3, 2, 2), (6, 11, 5, 2, 2)]
BATCH = 3


def conv_program():
    """Every kind of conv, its output and both gradients under a random output gradient."""
    main, startup = paddle.static.Program(), paddle.static.Program()
    fetch = []
    with paddle.static.program_guard(main, startup):
        for i, (c, size, k, stride, dil) in enumerate(KINDS):
            x = paddle.static.data(f"x{i}", [BATCH, c, size, size], "float32")
            w = paddle.static.data(f"w{i}", [c, 1, k, k], "float32")
            x.stop_gradient = w.stop_gradient = False
            y = F.conv2d(x, w, stride=stride, padding=dil * (k // 2), dilation=dil, groups=c)
            r = paddle.static.data(f"r{i}", y.shape, "float32")
            gx, gw = paddle.static.gradients([y], [x, w], target_gradients=[r])
            fetch += [paddle.scale(v, 1.0) for v in (y, gx, gw)]  # not the convs' own values
    feeds = [v for i in range(len(KINDS)) for v in (f"x{i}", f"w{i}", f"r{i}")]
    return Prog(main, feeds, fetch)


def conv_feed():
    rng = np.random.default_rng(0)
    feed = {}
    for i, (c, size, k, stride, dil) in enumerate(KINDS):
        out = (size - 1) // stride + 1
        feed.update({f"x{i}": rng.standard_normal((BATCH, c, size, size)),
                     f"w{i}": rng.standard_normal((c, 1, k, k)),
                     f"r{i}": rng.standard_normal((BATCH, c, out, out))})
    return feed


def kernels(prog):
    return sorted({op.name() for op in prog.program.global_block().ops if "depthwise" in op.name()})


@pytest.fixture(scope="module")
def placed():
    """Skip where this Paddle cannot place convs on oneDNN (no oneDNN build)."""
    prog = conv_program()
    if onednn.place_depthwise(prog.program) == 0:
        pytest.skip("this Paddle cannot run depthwise convs on oneDNN")
    return prog


def test_every_kind_of_depthwise_conv_matches_the_default_kernels(placed):
    assert kernels(placed) == ["onednn_op.depthwise_conv2d", "onednn_op.depthwise_conv2d_grad"]
    reference = conv_program()
    expected = Runner(paddle.CPUPlace(), depthwise="paddle").run(reference, **conv_feed())
    assert kernels(reference) == ["pd_op.depthwise_conv2d", "pd_op.depthwise_conv2d_grad"]
    got = Runner(paddle.CPUPlace(), depthwise="onednn").run(placed, **conv_feed())
    for i, (e, g) in enumerate(zip(expected, got)):
        what = f"{['output', 'input gradient', 'filter gradient'][i % 3]} of {KINDS[i // 3]}"
        assert e.shape == g.shape, what
        assert np.abs(g - e).max() <= 1e-5 * np.abs(e).max(), what


CFG = SearchConfig(C=4, layers=3, num_classes=5, image_size=8, unrolled=False)


def gradients(dtype, depthwise, monkeypatch):
    """loss and every gradient of one supernet gradient pass (weights and alphas from seed 0),
    the program built for the `depthwise` backend."""
    import dataclasses

    monkeypatch.setenv("DARTS_PADDLE_DEPTHWISE", depthwise)
    programs = build_search_programs(dataclasses.replace(CFG, dtype=dtype))
    runner = Runner(paddle.CPUPlace(), dtype=dtype, depthwise=depthwise)
    runner.run_startup(programs.startup)
    runner.set_all(programs.initial_values(np.random.default_rng(0)))
    for name, value in zip(ALPHAS, np.random.default_rng(1).standard_normal((2, 14, 8))):
        runner.set(name, value)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((4, 3, 8, 8)), rng.integers(0, 5, 4)
    loss, _ = runner.run(programs["grad"], x=x, y=y, bn_update=OFF)
    names = [*ALPHAS, *programs.network.params.banks]
    return programs, {"loss": loss, **{n: runner.get(programs.gradient_name(n)) for n in names}}


@pytest.mark.slow
def test_a_supernet_pass_on_onednn_is_as_accurate_as_the_default_kernels(placed, monkeypatch):
    programs, got = gradients("float32", "onednn", monkeypatch)
    assert "onednn_op.depthwise_conv2d_grad" in kernels(programs["grad"])
    _, default = gradients("float32", "paddle", monkeypatch)
    _, exact = gradients("float64", "onednn", monkeypatch)  # float64: left on the default kernels
    for name, e in exact.items():
        scale = np.abs(e).max()
        ours, theirs = np.abs(got[name] - e).max() / scale, np.abs(default[name] - e).max() / scale
        assert ours <= 3 * theirs + 1e-6, (name, ours, theirs)


@pytest.mark.slow
def test_the_supernet_on_paddles_conv2d_equals_it_on_our_kernel(monkeypatch):
    """The two ways nets/ops.depthwise builds the supernet's fused convs (our kernel, one op
    over several weights; Paddle's conv2d per weight over the tiled or split input,
    concatenated), float64: the per-edge reference (test_search_core) checks ours."""
    _, ours = gradients("float64", "kernel", monkeypatch)
    _, theirs = gradients("float64", "paddle", monkeypatch)
    for name, e in ours.items():
        np.testing.assert_allclose(theirs[name], e, rtol=1e-10, atol=1e-12, err_msg=name)


def test_float64_programs_keep_the_default_kernels(monkeypatch):
    monkeypatch.setenv("DARTS_PADDLE_DEPTHWISE", "onednn")
    programs = build_search_programs(CFG.__class__(**{**CFG.__dict__, "dtype": "float64"}))
    assert onednn.place_depthwise(programs["grad"].program) == 0
    assert kernels(programs["grad"]) == ["pd_op.depthwise_conv2d", "pd_op.depthwise_conv2d_grad"]


def test_backend_choice_and_its_thread_default(monkeypatch):
    monkeypatch.setenv("DARTS_PADDLE_DEPTHWISE", "onednn")
    assert runtime.depthwise_backend() == "onednn"
    assert runtime._default_env()["OMP_NUM_THREADS"] == "2"
    monkeypatch.delenv("DARTS_PADDLE_DEPTHWISE")
    assert runtime.depthwise_backend() == "kernel"
    assert runtime._default_env()["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("DARTS_PADDLE_DEPTHWISE", "mkl")
    with pytest.raises(UserError, match="DARTS_PADDLE_DEPTHWISE=mkl: use one of kernel, paddle, "
                                        "onednn"):
        runtime.depthwise_backend()


def inference(backend, monkeypatch):
    """An evaluation network's inference program built and run for `backend` ('onednn' or
    'paddle', DARTS_PADDLE_INFERENCE): the program and its fetches (loss, top-1, top-5,
    logits) on one random batch, with BN statistics away from 0 and 1 (inference mode
    reads them)."""
    from darts_paddle.train.programs import TrainConfig, build_train_programs
    import genotypes as G

    monkeypatch.setenv("DARTS_PADDLE_INFERENCE", backend)
    programs = build_train_programs(TrainConfig(C=4, layers=3, image_size=16), G.DARTS_V2,
                                    train=False)
    runner = Runner(paddle.CPUPlace())
    runner.run_startup(programs.startup)
    rng = np.random.default_rng(0)
    values = programs.initial_values(rng)
    for name, value in values.items():
        if name.endswith(".mean"):
            values[name] = rng.normal(0.0, 0.3, value.shape)
        elif name.endswith(".var"):
            values[name] = rng.uniform(0.5, 2.0, value.shape)
    runner.set_all(values)
    x, y = rng.standard_normal((6, 3, 16, 16)), rng.integers(0, 10, 6)
    return programs.infer, runner.run(programs.infer, x=x, y=y)


def test_inference_on_onednn_matches_the_default_kernels(monkeypatch):
    placed, got = inference("onednn", monkeypatch)
    ops = {op.name() for op in placed.program.global_block().ops}
    if not any(name.startswith("onednn_op.") for name in ops):
        pytest.skip("this Paddle cannot run programs on oneDNN")
    assert {"onednn_op.conv2d", "onednn_op.depthwise_conv2d", "onednn_op.batch_norm",
            "onednn_op.relu"} <= ops
    assert not any(name.startswith("custom_op.") for name in ops)
    # the executor's in-place pass is off only while the program is prepared
    assert paddle.get_flags("FLAGS_pir_apply_inplace_pass")["FLAGS_pir_apply_inplace_pass"]
    reference, expected = inference("paddle", monkeypatch)
    assert not any(op.name().startswith("onednn_op.")
                   for op in reference.program.global_block().ops)
    # the fetches in their order: loss, top-1, top-5, then the [6, 10] logits
    assert [e.shape for e in expected] == [g.shape for g in got] == [(), (), (), (6, 10)]
    for what, e, g in zip(["loss", "top-1", "top-5", "logits"], expected, got):
        assert np.abs(g - e).max() <= 1e-5 * max(1.0, np.abs(e).max()), what


def test_inference_backend_choice(monkeypatch):
    monkeypatch.delenv("DARTS_PADDLE_INFERENCE", raising=False)
    assert runtime.inference_backend() == "onednn"
    monkeypatch.setenv("DARTS_PADDLE_INFERENCE", "paddle")
    assert runtime.inference_backend() == "paddle"
    monkeypatch.setenv("DARTS_PADDLE_INFERENCE", "mkl")
    with pytest.raises(UserError, match="DARTS_PADDLE_INFERENCE=mkl: use one of onednn, paddle"):
        runtime.inference_backend()
