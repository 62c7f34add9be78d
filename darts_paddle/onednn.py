"""oneDNN on the CPU: the inference programs by default, the depthwise convolutions of the
others on request.

Inference programs (`place_inference`, `DARTS_PADDLE_INFERENCE=onednn`, the default):
Paddle's own placement pass, as its inference predictor runs it, puts every op oneDNN has
a kernel for on oneDNN, the depthwise convs included (the program is built with Paddle's
conv2d for them: our custom op would read the oneDNN ops' outputs in their own memory
layout).  Paddle then runs the program one op at a time in the calling thread, so
`threads` gives oneDNN's kernels every core for the run, and without its in-place pass
(`without_inplace`); inference then runs faster than on the default kernels
(docs/paddle.md section 8).  No gradients are involved, so the sign errors below cannot
occur; tests/test_onednn.py compares whole inference programs with the default kernels.

Opt-in for the other programs: the depthwise convolutions on oneDNN, every other op on
Paddle's default CPU kernels (`DARTS_PADDLE_DEPTHWISE=onednn`, see runtime.py).

Why: Paddle 3.3's default CPU depthwise kernel (one small GEMM per channel, one thread) is
most of a supernet pass and several times slower than oneDNN's, which is level with
PyTorch's (docs/paddle.md section 8).  `FLAGS_use_onednn` cannot be used: it is global,
crashes non-affine BN and silently flips the sign of some broadcast gradients
(docs/paddle.md section 8).  So only `pd_op.depthwise_conv2d` and
`pd_op.depthwise_conv2d_grad` are rewritten, by a declarative rewrite rule (DRR), into their `onednn_op` twins, whose
kernels the executor then takes from oneDNN.  tests/test_onednn.py checks every kind of
depthwise conv of the networks (stride, dilation, kernel size) and a whole supernet
gradient pass against the default kernels.

The catch: Paddle's executor runs a program that holds any oneDNN op one op at a time
(PirInterpreter's trace mode), so the other ops lose the two-ops-side-by-side parallelism
of the default; OpenMP threads (runtime.py sets OMP_NUM_THREADS = 2 for this mode) only
help oneDNN's and MKL's kernels.  So a supernet gradient pass gains, while a DARTS_V2
training step (more elementwise work, fewer depthwise convs) gains nothing
(docs/performance.md).

This leans on Paddle internals (the DRR Python binding, the onednn_op dialect, which only
exists once oneDNN has run a program): `place_depthwise` returns 0 and the program keeps
its default kernels whenever any of it is missing.  oneDNN's depthwise kernels are float32
only: float64 programs (tests) are left alone.
"""

import contextlib
import logging
import os

import numpy as np

from .paddle_static import paddle
from .runtime import inference_backend
from paddle.base.libpaddle import pir  # noqa: E402 (after paddle_static: Paddle loads configured)

log = logging.getLogger("darts_paddle.onednn")

OPS = {"depthwise_conv2d": (["input", "filter"], ["out"]),
       "depthwise_conv2d_grad": (["input", "filter", "out_grad"], ["input_grad", "filter_grad"])}
_state = {}


def _probe(paddle, grad=False):
    """A tiny program with one depthwise conv (and its gradient)."""
    main = paddle.static.Program()
    with paddle.static.program_guard(main, paddle.static.Program()):
        x = paddle.static.data("x", [2, 2, 3, 3], "float32")
        x.stop_gradient = not grad
        y = paddle.nn.functional.conv2d(x, paddle.ones([2, 1, 3, 3]), padding=1, groups=2)
        if grad:
            paddle.static.gradients([y], [x])
    return main, y


def _register_onednn_dialect(paddle):
    """Paddle registers the onednn_op dialect when oneDNN first lowers a program: run one
    tiny program with the global flag on, and set it back."""
    main, y = _probe(paddle)
    before = paddle.get_flags("FLAGS_use_onednn")
    paddle.set_flags({"FLAGS_use_onednn": True})
    try:
        paddle.static.Executor(paddle.CPUPlace()).run(
            main, feed={"x": np.ones((2, 2, 3, 3), np.float32)}, fetch_list=[y],
            scope=paddle.static.Scope())
    finally:
        paddle.set_flags(before)


def _onednn_attributes():
    """{op: {attribute: value}} of the onednn_op versions, read off Paddle's own placement
    pass run on a probe program, so that the rule sets every attribute the op requires."""
    _register_onednn_dialect(paddle)
    main, _ = _probe(paddle, grad=True)
    pm = paddle.pir.PassManager()
    pm.add_pass("onednn_placement_pass", {})
    pm.run(main)
    attrs = {op.name().split(".", 1)[1]: op.attrs() for op in main.global_block().ops
             if op.name().startswith("onednn_op.depthwise")}
    if set(attrs) != set(OPS):
        raise RuntimeError(f"placement pass gave {sorted(attrs)}")
    for a in attrs.values():
        a.pop("op_callstack", None)
        a.pop("stop_gradient", None)
        a["is_test"] = False  # the placement pass is for inference; we train
    return attrs


def _typed(res, value):
    """A DRR result attribute of the type `value` has."""
    if isinstance(value, bool):
        return res.BoolAttr(value)
    if isinstance(value, int):
        return res.Int32Attr(value)
    if isinstance(value, float):
        return res.Float32Attr(value)
    if isinstance(value, str):
        return res.StrAttr(value)
    if all(isinstance(v, int) for v in value):
        return res.VectorInt32Attr(list(value))
    return res.VectorFloat32Attr([float(v) for v in value])


def _pass_manager():
    """A PassManager with one rule per op: pd_op.<op>(same operands, same attributes) ->
    onednn_op.<op>(..., plus the oneDNN attributes)."""
    onednn_attrs = _onednn_attributes()
    pm = pir.PassManager()
    for name, (ins, outs) in OPS.items():
        ctx = pir.DrrPatternContext()
        src = ctx.SourcePattern()
        shared = ("strides", "paddings", "padding_algorithm", "groups", "dilations",
                  "data_format")
        op = src.Op("pd_op." + name, {a: src.Attr(a) for a in shared})
        op([src.Tensor(t) for t in ins], [src.Tensor(t) for t in outs])
        res = src.ResultPattern()
        attrs = {a: src.Attr(a) for a in shared}
        attrs.update({k: _typed(res, v) for k, v in onednn_attrs[name].items()
                      if k not in shared})
        new = res.Op("onednn_op." + name, attrs)
        new([res.Tensor(t) for t in ins], [res.Tensor(t) for t in outs])
        pm.register_pass(f"darts_paddle_{name}_onednn", ctx)
    return pm


def _depthwise_ops(program, prefix="pd_op."):
    return [op for op in program.global_block().ops if op.name() in {prefix + n for n in OPS}]


def place_depthwise(program):
    """Rewrite the float32 depthwise convs of `program` (in place, before its first run)
    into oneDNN ops; returns how many ops now run on oneDNN (0: defaults kept)."""
    ops = _depthwise_ops(program)
    if not ops or any("float32" not in str(op.operand_source(0).dtype).lower() for op in ops):
        return 0
    if "pm" not in _state:
        try:
            _state["pm"] = _pass_manager()
        except Exception as exc:  # Paddle without oneDNN, or its internals moved
            _state["pm"] = None
            log.warning("depthwise convolutions stay on Paddle's default kernels: oneDNN "
                        "placement unavailable (%s)", exc)
    if _state["pm"] is None:
        return 0
    _state["pm"].run(program)
    placed = len(_depthwise_ops(program, "onednn_op."))
    if placed != len(ops) or _depthwise_ops(program):
        raise RuntimeError(f"oneDNN placement rewrote {placed} of {len(ops)} depthwise convs")
    return placed


def for_inference(place):
    """Whether inference programs run on oneDNN at `place` (float32 ones): the CPU with
    DARTS_PADDLE_INFERENCE=onednn, the default."""
    return inference_backend() == "onednn" and isinstance(place, paddle.CPUPlace)


def place_inference(prog):
    """Put every op of the float32 inference `Prog` that oneDNN has a kernel for on
    oneDNN, in place, before its first run; returns how many ops it moved (0: the default
    kernels stay, e.g. Paddle without oneDNN).

    The pass replaces the ops that compute the fetched values, so the fetch ops are added
    first (as the executor would) and `prog.fetch` is read back from them."""
    block = prog.program.global_block()
    try:
        _register_onednn_dialect(paddle)
        with paddle.static.program_guard(prog.program):
            for i, value in enumerate(prog.fetch):
                paddle._pir_ops.fetch(value, f"fetch{i}", i).persistable = True
        pm = paddle.pir.PassManager()
        pm.add_pass("onednn_placement_pass", {})
        pm.run(prog.program)
    except Exception as exc:  # Paddle without oneDNN, or its internals moved
        log.warning("inference stays on Paddle's default kernels: oneDNN placement "
                    "unavailable (%s)", exc)
        return 0
    fetched = sorted((op.attrs()["col"], op.operand_source(0)) for op in block.ops
                     if op.name() == "pd_op.fetch")
    prog.fetch = [value for _, value in fetched]
    return sum(op.name().startswith("onednn_op.") for op in block.ops)


@contextlib.contextmanager
def without_inplace():
    """Programs prepared inside do without the executor's in-place pass
    (FLAGS_pir_apply_inplace_pass, read when a program is first run): between a oneDNN op
    and a default-kernel op Paddle inserts layout transfers that share their input's
    buffer, which the pass does not see, so an op it makes in-place overwrote values other
    ops still read (the fetched logits came back as their softmax)."""
    flag = "FLAGS_pir_apply_inplace_pass"
    before = paddle.get_flags(flag)
    paddle.set_flags({flag: False})
    try:
        yield
    finally:
        paddle.set_flags(before)


@contextlib.contextmanager
def threads():
    """OpenMP and MKL threads of the calling thread's kernels: every core this process may
    use inside, Paddle's own setting (FLAGS_paddle_num_threads) after: MKL's count is
    process-wide, and the executor's side-by-side mode wants one."""
    core = paddle.base.core
    core.set_num_threads(len(os.sched_getaffinity(0)))
    try:
        yield
    finally:
        core.set_num_threads(paddle.get_flags("FLAGS_paddle_num_threads")
                             ["FLAGS_paddle_num_threads"])
