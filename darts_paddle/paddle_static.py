"""Paddle, configured and in static mode: the one place program-building code imports it
from (`from darts_paddle.paddle_static import paddle, F`).  Importing this module applies
runtime.configure() (threads, allocator, flags: they must be set before Paddle loads), so
no importer can load Paddle unconfigured.  Code that needs no Paddle (genotypes, data,
pictures, argument parsing) does not import it."""

import collections.abc
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
    starts sooner.  The pass leaves alone ops with side effects, ops whose results an
    in-place op writes, and persistable inputs, so it is for programs that never read a
    variable again after writing it in place (a forward/backward pass, with the
    optimizer's updates at its end), not for the architect's vector programs."""
    pir.apply_cse_pass(program)
    return program


# gradients whose kernels Paddle 3.3 can differentiate again: kept as they are where
# `twice_differentiable_gradients` builds every other gradient from primitive ops
DOUBLE_GRAD_KERNELS = ("add_grad", "subtract_grad", "multiply_grad", "divide_grad",
                       "batch_norm_grad", "conv2d_grad", "relu_grad", "pool2d_grad",
                       "matmul_grad", "reshape_grad", "slice_grad", "expand_grad", "sum_grad",
                       "mean_grad", "tile_grad", "gather_grad")


def twice_differentiable_gradients(targets, inputs, target_gradients=None):
    """paddle.static.gradients, every gradient built from Paddle's primitive ops (which can
    be differentiated again: softmax_grad, exp_grad, logsumexp_grad, concat_grad and
    take_along_axis_grad cannot) but those of DOUBLE_GRAD_KERNELS (the primitive rules of the
    elementwise gradients alone add thousands of shape ops)."""
    core = paddle.framework.core
    saved = core._is_bwd_prim_enabled()
    # the list stays set, and is read only while the prim backward is on, as here
    core._set_prim_backward_blacklist(*DOUBLE_GRAD_KERNELS)
    core._set_prim_backward_enabled(True)
    try:
        return paddle.static.gradients(targets, inputs, target_gradients)
    finally:
        core._set_prim_backward_enabled(saved)


def fast_build(build):
    """Decorator for program builders: two of Paddle's build-time costs off while `build`
    runs (docs/paddle.md section 1), the programs unchanged.

    - Call stacks: Paddle stores on every op the stack `traceback.extract_stack()` returns
      (C++ looks it up on the module at each op), for its error messages; reading every
      frame's source line for each of the thousands of ops the backward appends is a
      large part of a build.  The stack is empty meanwhile: a failing op's message names
      the op without our source line.
    - Op listings: Paddle's backward lists the whole block three times per op it
      differentiates (`len(block.ops)` twice and the list once, in `append_backward_ops`),
      about half of the DARTS gradient program's build.
      `pir.Block.ops` gives a view meanwhile whose length asks the block for its count
      and which lists the ops once, when an op is first read."""
    @functools.wraps(build)
    def wrapper(*args, **kwargs):
        saved = traceback.extract_stack, pir.Block.ops
        traceback.extract_stack, pir.Block.ops = _no_stack, property(_OpsView)
        try:
            return build(*args, **kwargs)
        finally:
            traceback.extract_stack, pir.Block.ops = saved
    return wrapper


def _no_stack(f=None, limit=None):
    return traceback.StackSummary()


_block_ops = pir.Block.ops.fget


class _OpsView(collections.abc.Sequence):
    """`block.ops` listed when first read: its length before that is the block's count."""

    def __init__(self, block):
        self._block, self._ops = block, None

    def __len__(self):
        return self._block.num_ops() if self._ops is None else len(self._ops)

    def __getitem__(self, index):
        if self._ops is None:
            self._ops = _block_ops(self._block)
        return self._ops[index]
