"""The Paddle inference model of a trained network (train.py --export)."""

import logging
import os

import numpy as np

from ..paddle_static import paddle
from .programs import build_export_program

log = logging.getLogger("darts_paddle.train")


def export_inference_model(programs, runner, directory, x):
    """Save a Paddle inference model (x -> logits) and check that it reloads and predicts
    the logits of the inference program on `x`; returns the path prefix."""
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
    return prefix
