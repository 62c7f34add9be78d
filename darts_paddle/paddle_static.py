"""Paddle, configured and in static mode: the one place program-building code imports it
from (`from darts_paddle.paddle_static import paddle, F`).  Importing this module applies
runtime.configure() (threads, allocator, flags: they must be set before Paddle loads), so
no importer can load Paddle unconfigured.  Code that needs no Paddle (genotypes, data,
pictures, argument parsing) does not import it."""

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
