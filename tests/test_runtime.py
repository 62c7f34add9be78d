"""Process-wide runtime settings: the heap touched ahead (runtime.prefault); Paddle's
build-time costs off while programs are built (paddle_static.fast_build)."""

import json
import subprocess
import sys
import traceback

import pytest

from darts_paddle.nets.params import SharedVars
from darts_paddle.paddle_static import fast_build, paddle
from darts_paddle.search.methods import make_method
from darts_paddle.search.programs import SearchConfig, build_gradient_program, search_network
from darts_paddle.train.programs import TrainConfig, build_train_programs

import genotypes as G  # noqa: E402

PROBE = r"""
import json, os
import numpy as np
from darts_paddle import runtime

paddle = runtime.import_paddle()
MB = 1 << 20

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB

before = rss()
thread = runtime.prefault(paddle.CPUPlace(), 256 * MB)
small = []
while thread.is_alive():  # small allocations meanwhile, as the program build makes
    small.append(np.ones(512))
touched = rss() - before - len(small) * 4096 / MB
before = rss()
# 17 MB arrays: more than one 16 MB block of the prefault, below the mmap threshold, so
# they come from the heap like Paddle's buffers
arrays = [np.ones(17 * MB // 8) for _ in range(12)]
print(json.dumps({"touched": touched, "later": rss() - before,
                  "none_for_gpu": runtime.prefault(object(), 256 * MB) is None,
                  "none_for_little": runtime.prefault(paddle.CPUPlace(), MB) is None}))
"""


@pytest.mark.subprocess
def test_prefaulted_heap_serves_later_allocations():
    """The touched memory stays resident in the process, and 204 MB allocated afterwards,
    in blocks larger than the prefault's, take their pages from it although the main
    thread allocated meanwhile: the resident size hardly grows (fresh memory: by 204 MB)."""
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, timeout=120)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["touched"] > 0.9 * 256  # MB
    assert got["later"] < 0.1 * 204
    assert got["none_for_gpu"] and got["none_for_little"]


def test_builders_see_an_empty_call_stack_until_they_return_or_raise():
    """paddle_static.fast_build: Paddle's per-op stack (traceback.extract_stack, looked up
    at each op) is empty inside a builder and whole again after it, even when the builder
    raised; so is a block's op list lazy inside and a list again after."""
    seen = []

    @fast_build
    def build(fail):
        seen.append(len(traceback.extract_stack()))
        assert not isinstance(paddle.static.Program().global_block().ops, list)
        if fail:
            raise RuntimeError("the build failed")

    build(False)
    with pytest.raises(RuntimeError, match="the build failed"):
        build(True)
    assert seen == [0, 0]
    assert len(traceback.extract_stack()) > 1
    assert isinstance(paddle.static.Program().global_block().ops, list)


def op_signature(prog):
    """A built `Prog`'s ops in order, each with its operand and result counts."""
    return [(op.name(), op.num_operands(), op.num_results())
            for op in prog.program.global_block().ops]


def test_fast_build_builds_the_same_program():
    """A gradient program (DADARTS: every kind of op the search uses) built with and
    without fast_build: the same ops in the same order, with the same operand and result
    counts."""
    cfg = SearchConfig(C=4, layers=3, num_classes=5, image_size=8,
                       method=make_method("dadarts"))

    def ops(build):
        return op_signature(build(search_network(cfg), SharedVars(cfg.dtype),
                                  cfg.method.arch_parameters(), cfg, paddle.static.Program()))
    fast, plain = ops(build_gradient_program), ops(build_gradient_program.__wrapped__)
    assert len(fast) > 1000 and fast == plain


def test_fast_build_builds_the_same_training_program():
    """The evaluation network's training program (auxiliary head, drop path) likewise."""
    cfg = TrainConfig(C=4, layers=3, image_size=32, auxiliary=True, drop_path_prob=0.2)

    def ops(build):
        return op_signature(build(cfg, G.DARTS_V2).train)
    fast, plain = ops(build_train_programs), ops(build_train_programs.__wrapped__)
    assert len(fast) > 400 and fast == plain
