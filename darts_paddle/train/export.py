"""The Paddle inference model of a trained network (train.py --export), and its ONNX
conversion (--export onnx): paddle2onnx converts the saved inference model, onnxruntime
runs it on a batch, and its logits must match Paddle's."""

import logging
import os

import numpy as np

from ..errors import UserError
from ..paddle_static import paddle
from ..storage.atomic import write_atomic
from .programs import build_export_program

log = logging.getLogger("darts_paddle.train")

# float32 kernels of two runtimes summing in different orders: |onnx - paddle| <=
# ONNX_TOLERANCE * (1 + |paddle|) elementwise
ONNX_TOLERANCE = 1e-4
ONNX_OPSET = 13
ONNX_PACKAGES = ("paddle2onnx", "onnxruntime")


def export_inference_model(programs, runner, directory, x, onnx=False):
    """Save a Paddle inference model (x -> logits) and check that it reloads and predicts
    the logits of the inference program on `x`; with `onnx` also its ONNX conversion,
    checked likewise (export_onnx).  Returns the path prefix."""
    prefix = os.path.join(directory, "model")
    os.makedirs(directory, exist_ok=True)
    export = build_export_program(programs)
    feed_x, logits = export.fetch
    with paddle.static.scope_guard(runner.scope):
        paddle.static.save_inference_model(prefix, [feed_x], [logits], runner.exe,
                                           program=export.program)
    y = np.zeros(len(x), np.int64)
    expected = runner.run(programs.infer, x=x, y=y)[-1]
    scope = paddle.static.Scope()
    with paddle.static.scope_guard(scope):
        exe = paddle.static.Executor(runner.place)
        loaded, feed_names, fetch = paddle.static.load_inference_model(prefix, exe)
        if feed_names != ["x"]:
            raise RuntimeError(f"exported model expects inputs {feed_names}, not just x")
        got = exe.run(loaded, feed={"x": x.astype(np.float32)}, fetch_list=fetch,
                      scope=scope)[0]
    if not np.allclose(got, expected, rtol=1e-5, atol=1e-5):
        raise RuntimeError(f"exported model predicts different logits (max difference "
                           f"{np.abs(got - expected).max():.3g})")
    log.info("inference model saved to %s.* (reloaded: same logits, max difference %.3g)",
             prefix, float(np.abs(got - expected).max()))
    if onnx:
        export_onnx(prefix, x, expected)
    return prefix


def check_onnx_available():
    """--export onnx fails before any work when a converter package is missing."""
    missing = [name for name in ONNX_PACKAGES if not _importable(name)]
    if missing:
        raise UserError(f"--export onnx needs {' and '.join(missing)}: pip install "
                        f"{' '.join(ONNX_PACKAGES)} (or pip install darts-paddle[onnx])")


def _importable(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def export_onnx(prefix, x, expected):
    """Convert the inference model at `prefix` to prefix.onnx with paddle2onnx and check
    that onnxruntime predicts the logits `expected` of `x` (ONNX_TOLERANCE); returns the
    path."""
    import onnxruntime
    import paddle2onnx

    path = prefix + ".onnx"
    # PIR writes the program as .json, the old IR as .pdmodel
    model_file = next(f for f in (prefix + ".json", prefix + ".pdmodel") if os.path.exists(f))
    try:
        # no save_file: the model comes back as bytes, without the optional optimizer
        # pass (its default, polygraphy, pip-installs a package at run time)
        model = paddle2onnx.export(model_file, prefix + ".pdiparams", opset_version=ONNX_OPSET)
    except Exception as exc:  # paddle2onnx logs its own error, then fails on it
        raise RuntimeError(f"paddle2onnx {paddle2onnx.__version__} could not convert "
                           f"{model_file}: {exc}") from exc
    write_atomic(path, lambda f: f.write(model))
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # not the warnings about the converter's unused constants
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    (feed,) = session.get_inputs()
    got = session.run(None, {feed.name: x.astype(np.float32)})[0]
    difference = float(np.abs(got - expected).max())
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=ONNX_TOLERANCE,
                                                      atol=ONNX_TOLERANCE):
        raise RuntimeError(f"the ONNX model {path} predicts other logits than Paddle on a batch "
                           f"of {len(x)} (max difference {difference:.3g}, tolerance "
                           f"{ONNX_TOLERANCE:g})")
    log.info("ONNX model saved to %s (paddle2onnx %s, opset %d; onnxruntime %s on %d images: "
             "max |logit difference| to Paddle %.3g, tolerance %g)", path,
             paddle2onnx.__version__, ONNX_OPSET, onnxruntime.__version__, len(x), difference,
             ONNX_TOLERANCE)
    return path
