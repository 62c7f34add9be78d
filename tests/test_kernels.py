"""Our depthwise convolution kernel (darts_paddle/kernels/) against Paddle's conv2d on its
own kernels and against finite differences; where it is used and where not (the search
cell without its tile, exported programs, the fallback when it cannot be built)."""

import logging

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

paddle = import_paddle()

import paddle.nn.functional as F  # noqa: E402

import genotypes as G  # noqa: E402
from darts_paddle.errors import UserError  # noqa: E402
from darts_paddle.kernels import depthwise  # noqa: E402
from darts_paddle.nets import ops  # noqa: E402
from darts_paddle.nets.params import ParamStore  # noqa: E402
from darts_paddle.runner import Prog, Runner  # noqa: E402
from darts_paddle.search.programs import SearchConfig, build_search_programs  # noqa: E402
from darts_paddle.train.programs import (TrainConfig, build_export_program,  # noqa: E402
                                         build_train_programs, multiply_adds)

CUSTOM = f"custom_op.{depthwise.OP}"
# (C_in, copies, size, kernel, stride, dilation): the networks' sep and dil convs at stride
# 1 and 2, plain (copies 1) and as the search cell's fused edges (C_out = copies * C_in),
# on odd and even sizes
KINDS = [(3, 1, 8, 3, 1, 1), (2, 3, 7, 3, 1, 1), (3, 1, 7, 5, 1, 1), (2, 2, 8, 5, 1, 1),
         (3, 2, 8, 3, 1, 2), (2, 1, 7, 3, 1, 2), (3, 1, 9, 5, 1, 2), (2, 4, 8, 5, 1, 2),
         (3, 1, 8, 3, 2, 1), (2, 3, 7, 3, 2, 1), (3, 2, 7, 5, 2, 1), (2, 1, 8, 5, 2, 1),
         (3, 1, 7, 3, 2, 2), (2, 2, 8, 3, 2, 2), (3, 1, 11, 5, 2, 2), (2, 5, 10, 5, 2, 2)]
BATCH = 3


@pytest.fixture(scope="module", autouse=True)
def kernel_built():
    if not depthwise.available():
        pytest.fail("the depthwise kernel did not build: is g++ installed?")


def out_size(size, k, stride, dil):
    return (size + 2 * dil * (k // 2) - dil * (k - 1) - 1) // stride + 1


def conv_program(dtype, ours):
    """Every kind: output and both gradients under a given output gradient.  Reference:
    conv2d with groups = C_out over x tiled `copies` times (tile's gradient sums them)."""
    main = paddle.static.Program()
    fetch = []
    with paddle.static.program_guard(main, paddle.static.Program()):
        for i, (c, copies, size, k, stride, dil) in enumerate(KINDS):
            x = paddle.static.data(f"x{i}", [BATCH, c, size, size], dtype)
            w = paddle.static.data(f"w{i}", [copies * c, 1, k, k], dtype)
            x.stop_gradient = w.stop_gradient = False
            pad = dil * (k // 2)
            if ours:
                y = depthwise.depthwise_conv2d(x, [w], stride, [dil])
            else:
                y = F.conv2d(paddle.tile(x, [1, copies, 1, 1]), w, stride=stride, padding=pad,
                             dilation=dil, groups=copies * c)
            r = paddle.static.data(f"r{i}", y.shape, dtype)
            gx, gw = paddle.static.gradients([y], [x, w], target_gradients=[r])
            fetch += [paddle.scale(v, 1.0) for v in (y, gx, gw)]
    feeds = [v for i in range(len(KINDS)) for v in (f"x{i}", f"w{i}", f"r{i}")]
    return Prog(main, feeds, fetch)


def conv_feed():
    rng = np.random.default_rng(0)
    feed = {}
    for i, (c, copies, size, k, stride, dil) in enumerate(KINDS):
        out = out_size(size, k, stride, dil)
        feed.update({f"x{i}": rng.standard_normal((BATCH, c, size, size)),
                     f"w{i}": rng.standard_normal((copies * c, 1, k, k)),
                     f"r{i}": rng.standard_normal((BATCH, copies * c, out, out))})
    return feed


def op_names(prog):
    return {op.name() for op in prog.program.global_block().ops}


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-12), ("float32", 1e-5)])
def test_every_kind_of_depthwise_conv_matches_paddles_conv2d(dtype, tolerance):
    ours, reference = conv_program(dtype, True), conv_program(dtype, False)
    assert CUSTOM in op_names(ours) and CUSTOM + "_grad" in op_names(ours)
    got = Runner(paddle.CPUPlace(), dtype).run(ours, **conv_feed())
    expected = Runner(paddle.CPUPlace(), dtype).run(reference, **conv_feed())
    for i, (e, g) in enumerate(zip(expected, got)):
        what = f"{['output', 'input gradient', 'filter gradient'][i % 3]} of {KINDS[i // 3]}"
        assert e.shape == g.shape and g.dtype == np.dtype(dtype), what
        assert np.abs(g - e).max() <= tolerance * np.abs(e).max(), what


def test_two_threads_compute_the_same_numbers(monkeypatch):
    """Threads split planes and channels, never a sum: the results are bit for bit equal."""
    one = Runner(paddle.CPUPlace(), "float32").run(conv_program("float32", True), **conv_feed())
    monkeypatch.setenv(depthwise.THREADS_VARIABLE, "2")
    two = Runner(paddle.CPUPlace(), "float32").run(conv_program("float32", True), **conv_feed())
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setenv(depthwise.THREADS_VARIABLE, "0")
    with pytest.raises(UserError, match="DARTS_PADDLE_KERNEL_THREADS=0: use a positive"):
        depthwise.kernel_threads()


# (C_in, [(C_out of the weight, kernel, dilation)], stride): the search cell's two stages,
# the four conv primitives of 3 edges reading C_in channels, and the sep convs' second
# halves, where each weight reads its own slice of the input's channels
MULTI = [(2, [(6, 3, 1), (6, 5, 1), (6, 3, 2), (6, 5, 2)], 1),
         (3, [(6, 3, 1), (6, 5, 1), (6, 3, 2), (6, 5, 2)], 2),
         (8, [(4, 3, 1), (4, 5, 1)], 1)]


@pytest.mark.parametrize("c, weights, stride", MULTI)
def test_several_weights_are_the_convs_of_each_stacked(c, weights, stride):
    """One op over several weights against one conv2d per weight over the channels its
    output channels read (o % C_in), concatenated: output and every gradient."""
    main = paddle.static.Program()
    with paddle.static.program_guard(main, paddle.static.Program()):
        x = paddle.static.data("x", [BATCH, c, 9, 9], "float64")
        ws = [paddle.static.data(f"w{i}", [n, 1, k, k], "float64")
              for i, (n, k, _) in enumerate(weights)]
        for v in (x, *ws):
            v.stop_gradient = False
        dilations = [d for _, _, d in weights]
        ours = depthwise.depthwise_conv2d(x, ws, stride, dilations)
        parts, first = [], 0
        for w, (n, k, d) in zip(ws, weights):
            channels = [(first + i) % c for i in range(n)]
            parts.append(F.conv2d(paddle.gather(x, paddle.to_tensor(channels), axis=1), w,
                                  stride=stride, padding=d * (k // 2), dilation=d, groups=n))
            first += n
        reference = paddle.concat(parts, axis=1)
        r = paddle.static.data("r", reference.shape, "float64")
        fetch = [ours, reference]
        for y in (ours, reference):
            fetch += paddle.static.gradients([y], [x, *ws], target_gradients=[r])
    rng = np.random.default_rng(5)
    feed = {"x": rng.standard_normal((BATCH, c, 9, 9)),
            "r": rng.standard_normal(reference.shape)}
    feed.update({f"w{i}": rng.standard_normal((n, 1, k, k)) for i, (n, k, _) in enumerate(weights)})
    got, expected, *grads = Runner(paddle.CPUPlace(), "float64").run(Prog(main, list(feed), fetch),
                                                                     **feed)
    assert got.shape == expected.shape == (BATCH, sum(n for n, _, _ in weights),
                                           (9 - 1) // stride + 1, (9 - 1) // stride + 1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    half = len(grads) // 2
    for g, e in zip(grads[:half], grads[half:]):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-11)


@pytest.mark.parametrize("stride, dil", [(1, 2), (2, 1)])
def test_gradients_equal_finite_differences(stride, dil):
    """loss = sum(r * conv(x, w)): each gradient element against a central difference."""
    main = paddle.static.Program()
    with paddle.static.program_guard(main, paddle.static.Program()):
        x = paddle.static.data("x", [2, 2, 5, 5], "float64")
        w = paddle.static.data("w", [4, 1, 3, 3], "float64")
        x.stop_gradient = w.stop_gradient = False
        # a second weight of another size and dilation: output channels 4, 5 read x's 0, 1
        w5 = paddle.static.data("w5", [2, 1, 5, 5], "float64")
        w5.stop_gradient = False
        y = depthwise.depthwise_conv2d(x, [w, w5], stride, [dil, 3 - dil])
        r = paddle.static.data("r", y.shape, "float64")
        loss = paddle.sum(y * r)
        grads = paddle.static.gradients([loss], [x, w, w5])
    runner = Runner(paddle.CPUPlace(), "float64")
    prog = Prog(main, ["x", "w", "w5", "r"], [loss, *grads])
    rng = np.random.default_rng(3)
    feed = {"x": rng.standard_normal((2, 2, 5, 5)), "w": rng.standard_normal((4, 1, 3, 3)),
            "w5": rng.standard_normal((2, 1, 5, 5)), "r": rng.standard_normal(y.shape)}
    _, *got_grads = runner.run(prog, **feed)
    h = 1e-4
    for name, got in zip(("x", "w", "w5"), got_grads):
        numeric = np.zeros_like(got)
        for index in np.ndindex(*got.shape):
            losses = []
            for sign in (1, -1):
                shifted = feed[name].copy()
                shifted[index] += sign * h
                losses.append(runner.run(prog, **{**feed, name: shifted})[0])
            numeric[index] = (losses[0] - losses[1]) / (2 * h)
        np.testing.assert_allclose(got, numeric, rtol=1e-8, atol=1e-9, err_msg=name)


def search_ops(backend, monkeypatch):
    monkeypatch.setenv("DARTS_PADDLE_DEPTHWISE", backend)
    cfg = SearchConfig(C=4, layers=3, num_classes=5, image_size=8, unrolled=False)
    return op_names(build_search_programs(cfg)["grad"])


def test_the_search_cell_reads_its_input_untiled_on_our_kernel(monkeypatch):
    ours = search_ops("kernel", monkeypatch)
    assert CUSTOM + "_grad" in ours
    assert not {"pd_op.tile", "pd_op.depthwise_conv2d"} & ours
    stock = search_ops("paddle", monkeypatch)
    assert {"pd_op.tile", "pd_op.depthwise_conv2d_grad"} <= stock and CUSTOM not in stock


def test_exported_programs_keep_paddles_conv2d(monkeypatch):
    """The inference predictor and paddle2onnx know no custom op."""
    monkeypatch.setenv("DARTS_PADDLE_INFERENCE", "paddle")  # oneDNN's: Paddle's conv2d too
    programs = build_train_programs(TrainConfig(C=4, layers=3, image_size=16), G.DARTS_V2,
                                    train=False)
    assert CUSTOM in op_names(programs.infer)
    exported = op_names(build_export_program(programs))
    assert "pd_op.depthwise_conv2d" in exported
    assert not any(name.startswith("custom_op.") for name in exported)
    # the same network, so the same count: multiply_adds counts our op as a conv
    assert multiply_adds(build_export_program(programs)) == multiply_adds(programs.infer)


@pytest.mark.subprocess
def test_without_a_compiler_convs_fall_back_to_conv2d(tmp_path, monkeypatch, caplog):
    """A build that fails (here: a source that does not compile) costs one log line."""
    broken = tmp_path / "broken.cc"
    broken.write_text("#error no compiler here\n")
    monkeypatch.setattr(depthwise, "SOURCE", str(broken))
    monkeypatch.setattr(depthwise, "_state", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # the log straight to caplog: a search run earlier in the session (run.logs.setup_logging)
    # stops darts_paddle's records at its own handlers
    logger = logging.getLogger("darts_paddle.kernels")
    monkeypatch.setattr(logger, "handlers", [caplog.handler])
    monkeypatch.setattr(logger, "propagate", False)
    with caplog.at_level(logging.INFO, logger="darts_paddle.kernels"):
        assert not depthwise.available()
        assert not depthwise.available()  # tried once per process
    assert [r.levelname for r in caplog.records] == ["INFO", "WARNING"]  # compiling, failed
    assert "apt-get install g++" in caplog.records[1].getMessage()
    assert "compile.log" in caplog.records[1].getMessage()
    params = ParamStore("weights")
    dw = params.declare("dw", [6, 1, 3, 3])
    main = paddle.static.Program()
    with paddle.static.program_guard(main, paddle.static.Program()):
        x = paddle.static.data("x", [2, 3, 8, 8], "float32")
        dw.value = paddle.static.create_parameter([6, 1, 3, 3], "float32")
        ops.depthwise(x, [dw])
    names = op_names(Prog(main))
    assert {"pd_op.tile", "pd_op.depthwise_conv2d"} <= names and CUSTOM not in names


def test_a_changed_source_is_built_again(tmp_path, monkeypatch):
    before = depthwise.build_key()
    changed = tmp_path / "depthwise.cc"
    changed.write_text(open(depthwise.SOURCE).read() + "\n// changed\n")
    monkeypatch.setattr(depthwise, "SOURCE", str(changed))
    assert depthwise.build_key() != before
