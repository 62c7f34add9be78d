"""bench/profile_ops.py's bookkeeping: op kinds and the busy time of overlapping ops."""

from bench import profile_ops


def test_kinds_put_gradients_with_their_forward_op():
    kind = profile_ops.kind_of
    assert kind("pd_op.depthwise_conv2d_grad") == kind("pd_op.depthwise_conv2d") == "depthwise conv"
    assert kind("pd_op.conv2d_grad") == "conv (dense, 1x1 and stem)"
    assert kind("pd_op.batch_norm_grad") == "batch norm"
    assert kind("pd_op.add_n") == "add_n, sum, mean"
    assert kind("pd_op.add_grad") == "elementwise (add, multiply, ...)"
    assert kind("pd_op.momentum_") == "optimizer, clip, weight vectors"
    assert kind("pd_op.unheard_of") == "other"


def test_busy_time_is_the_union_of_the_intervals():
    # [0, 10) and [5, 12) overlap, [20, 21) alone, [30, 40) contains [32, 35)
    intervals = [(5, 7), (0, 10), (20, 1), (30, 10), (32, 3)]
    assert profile_ops.covered(intervals) == 12 + 1 + 10
    assert profile_ops.covered([]) == 0
