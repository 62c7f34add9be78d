"""Paddle, configured and in static mode: the one place program-building code imports it
from (`from darts_paddle.paddle_static import paddle, F`).  Importing this module applies
runtime.configure() (threads, allocator, flags: they must be set before Paddle loads), so
no importer can load Paddle unconfigured.  Code that needs no Paddle (genotypes, data,
pictures, argument parsing) does not import it."""

import functools
import traceback

from .runtime import import_paddle

paddle = import_paddle()
F = paddle.nn.functional
from paddle.base.libpaddle import pir  # noqa: E402 (after import_paddle: Paddle configured)


def merge_repeated_ops(program):
    """One op for every repeated side-effect-free computation of `program` (Paddle's common
    subexpression pass): the shape and axis constants, zero tensors and list packings that
    every BN, reshape, pool and concat brings.  The executor's preparation of a program
    grows faster than its op count (docs/paddle.md section 1), so the gradient program
    starts about 4 s sooner.  The pass leaves alone ops with side effects, ops whose
    results an in-place op writes, and persistable inputs, so it is for programs that never
    read a variable again after writing it in place (a forward/backward pass, with the
    optimizer's updates at its end), not for the architect's vector programs."""
    pir.apply_cse_pass(program)
    return program


def without_op_callstacks(build):
    """Decorator: build programs without recording each op's Python call stack.

    Paddle stores, on every op a static API appends, the stack `traceback.extract_stack()`
    returns (C++ looks the function up on the module at each call), for its error
    messages.  Reading the source lines of every frame for each of the ~8,000 ops of the
    gradient program (half of them zero-gradient ops the backward creates and drops) took
    4 s of its 11 s build here, more under pytest's deeper stacks (docs/paddle.md section
    1).  The stack is empty while `build` runs; a failing op's message then names the op
    without our source line."""
    @functools.wraps(build)
    def wrapper(*args, **kwargs):
        saved = traceback.extract_stack
        traceback.extract_stack = _no_stack
        try:
            return build(*args, **kwargs)
        finally:
            traceback.extract_stack = saved
    return wrapper


def _no_stack(f=None, limit=None):
    return traceback.StackSummary()
