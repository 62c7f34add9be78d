"""Run by tests/test_search_distributed.py under paddle.distributed.launch (2 processes):
each process takes its half of fixed float64 batches on a tiny supernet and saves, per
method (and for DARTS and PC-DARTS also on NAS-Bench-201's supernet), what the test compares with one process: the gradients of one pass (DARTS: and
an exact Hessian-vector product of lambda_max), the state before a second-order alpha
gradient and its result, and the whole state after a few search steps.
Usage: python tests/helpers/search_probe.py OUT_DIR (a script: only darts_paddle on the path)"""

import dataclasses
import os
import sys

import numpy as np

from darts_paddle.runtime import import_paddle

import_paddle()

from darts_paddle import distributed  # noqa: E402
from darts_paddle.runner import Runner  # noqa: E402
from darts_paddle.search import collapse  # noqa: E402
from darts_paddle.search.architect import OFF, Architect  # noqa: E402
from darts_paddle.search.methods import ARCH, METHODS, make_method  # noqa: E402
from darts_paddle.search.programs import SearchConfig  # noqa: E402
from darts_paddle.search import spaces  # noqa: E402

TINY = SearchConfig(C=2, layers=3, num_classes=5, image_size=8, epochs=4, unrolled=True,
                    dtype="float64")
BATCH, ETA = 4, 0.0625  # eta exact in float32, the architect feeds it so


def direction(size):
    """The u of the probed Hessian-vector product."""
    return np.random.default_rng(9).standard_normal(size)


def global_batch(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((BATCH, 3, 8, 8)), rng.integers(0, 5, BATCH)


# PC-DARTS splits the ops' channels in K parts: 2 of TINY's 2 (1 through the ops)
FLAGS = {"pcdarts": {"pc_k": 2}}
# the probed searches: name -> (method, space); NAS-Bench-201's with one cell per stage
CASES = {**{m: (m, "darts") for m in METHODS},
         "nb201-darts": ("darts", "nb201"), "nb201-pcdarts": ("pcdarts", "nb201")}


def make(case, world_size, place=None):
    method, space = CASES[case]
    space = spaces.of(space)
    cfg = dataclasses.replace(TINY, method=make_method(method, space.LAYOUT,
                                                       **FLAGS.get(method, {})),
                              world_size=world_size, layers=1 if space.NAME == "nb201" else 3)
    programs = space.build_programs(cfg)
    runner = Runner(place, dtype="float64")
    runner.run_startup(programs.startup)
    runner.set_all(programs.initial_values(np.random.default_rng(0)))
    architect = Architect(runner, programs, unrolled=True)
    architect.set_epoch(2, 4)  # mid-search: every method's feeds on, PC-DARTS warmed up
    return programs, runner, architect


def state(programs, runner):
    return {k: runner.get(name) for k, name in programs.state_names().items()}


def main(out):
    world = distributed.world_from_env()
    place = distributed.start(world)

    def part(seed):
        x, y = global_batch(seed)
        return x[world.part(BATCH)], y[world.part(BATCH)]

    for method in CASES:
        programs, runner, architect = make(method, world.size, place)
        dump = {}
        architect.gradient(part(1), OFF, ARCH)
        for name in [*programs.arch.names, *programs.network.params.banks]:
            dump["grad/" + name] = runner.get(programs.gradient_name(name))
        if method == "darts":  # one method: the program takes seconds to build and prepare
            product = collapse.AlphaHessian(architect, [part(1)])
            dump["hessian"] = product(direction(product.size))
        architect.weight_step(part(2))  # momentum no longer zero
        dump.update({"before/" + k: v for k, v in state(programs, runner).items()})
        architect.refresh()
        architect.alpha_gradient(part(3), part(4), ETA)
        for name in programs.arch.names:
            dump["second/" + name] = runner.get(programs.gradient_name(name))
        terms = architect.unrolled_terms()
        dump["second/R"] = terms["R"]
        dump.update({"second/v/" + b: v for b, v in terms["v"].items()})
        dump.update({"second/d/" + a: d for a, d in terms["d_alpha"].items()})
        for step in range(3):
            architect.step(part(10 + step), part(20 + step), ETA)
            architect.weight_step(part(10 + step))
        dump.update({"after/" + k: v for k, v in state(programs, runner).items()})
        np.savez(os.path.join(out, f"{method}-rank{world.rank}.npz"), **dump)


if __name__ == "__main__":
    main(sys.argv[1])
