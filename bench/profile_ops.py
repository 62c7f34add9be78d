"""Where a step's time goes: Paddle's profiler over our programs, grouped by kind of op.

    python bench/profile_ops.py [--programs search eval] [--search_batch 16]
                                [--eval_batch 96] [--steps 2] [--space darts|nb201]

  search   one gradient pass of the supernet of --space (darts: the default supernet,
           C 16, 8 layers, 32x32; nb201: NAS-Bench-201's), as in bench/search_bench.py
           (a search step is 2 or 5 of them)
  eval     one DARTS_V2 CIFAR training step (C 36, 20 layers, auxiliary, drop path), as
           in bench/eval_bench.py
Each program is built, run once (Paddle prepares it), then profiled for --steps runs.
Per run it prints the wall time, the time some op was running (the union of the ops'
intervals over all executor threads; the rest is executor and host overhead), the summed
op time (above the wall time when ops run side by side; Paddle's executor runs more
threads than there are cores, so it counts time-sliced waiting too), and a table of op
kinds (forward and gradient ops together) by their share of the summed op time.  Each program
runs in its own process.  The runtime defaults apply (our depthwise kernel;
DARTS_PADDLE_DEPTHWISE=paddle or =onednn profiles Paddle's or oneDNN's).
"""

import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":  # run as a script: bench and darts_paddle from the root
    sys.path.insert(0, ROOT)

# op kinds, first match wins (names without the dialect prefix and the _grad suffix)
KINDS = [
    ("depthwise conv", r"depthwise_conv2d"),
    ("conv (dense, 1x1 and stem)", r"conv2d"),
    ("batch norm", r"batch_norm"),
    ("relu", r"relu"),
    ("pooling", r"pool"),
    ("optimizer, clip, weight vectors", r"momentum|adam|sgd|clip|squared_l2|sqrt|share_data"),
    ("cross-entropy, softmax, linear", r"cross_entropy|softmax|matmul|accuracy|log_softmax"),
    ("add_n, sum, mean", r"^add_n|^sum|^mean"),
    ("elementwise (add, multiply, ...)", r"^add|^multiply|^subtract|^divide|^scale|^where"),
    ("split, concat, slice, reshape", r"split|concat|slice|reshape|transpose|combine|gather"),
]


def kind_of(op):
    name = op.split(".", 1)[-1].removesuffix("_grad")
    return next((kind for kind, pattern in KINDS if re.search(pattern, name)), "other")


def search_runner():
    import numpy as np

    from bench.search_bench import random_batches, search_config

    from darts_paddle.search import spaces
    from darts_paddle.search.architect import ON
    from darts_paddle.search.methods import make_method
    from darts_paddle.runner import Runner

    space = spaces.of(ARGS.space)
    programs = space.build_programs(search_config(space, make_method("darts", space.LAYOUT), 1))
    runner = Runner()
    runner.run_startup(programs.startup)
    runner.set_all(programs.initial_values(np.random.default_rng(0)))
    data = random_batches(ARGS.search_batch)

    def run():
        x, y = data()
        runner.run(programs["grad"], x=x, y=y, bn_update=ON)
    return run


def eval_runner():
    import numpy as np

    from bench.eval_bench import CONFIGS, DROP_PROB
    from bench.search_bench import random_batches

    from darts_paddle.registry import resolve_arch
    from darts_paddle.nets.networks import drop_path_masks
    from darts_paddle.runner import Runner
    from darts_paddle.train.programs import TrainConfig, build_train_programs

    cfg = TrainConfig(**CONFIGS["cifar"])
    programs = build_train_programs(cfg, resolve_arch("DARTS_V2"))
    runner = Runner()
    runner.run_startup(programs.startup)
    rng = np.random.default_rng(0)
    runner.set_all(programs.initial_values(rng))
    data = random_batches(ARGS.eval_batch, cfg.image_size, cfg.num_classes)

    def run():
        x, y = data()
        masks = drop_path_masks(rng, programs.network.drop_paths, ARGS.eval_batch, DROP_PROB)
        runner.run(programs.train, x=x, y=y, drop_mask=masks)
    return run


def op_events(trace_dir):
    """[(name, start_us, duration_us, thread)] of the operator events of the traces."""
    events = []
    for path in glob.glob(os.path.join(trace_dir, "*.json")):
        with open(path) as f:
            trace = json.load(f)
        for e in trace["traceEvents"] if isinstance(trace, dict) else trace:
            if e.get("ph") == "X" and e.get("cat") == "Operator":
                events.append((e["name"].split("[", 1)[0], float(e["ts"]), float(e["dur"]),
                               e.get("tid")))
    return events


def covered(intervals):
    """Length of the union of (start, duration) intervals."""
    total, end = 0.0, float("-inf")
    for start, dur in sorted(intervals):
        if start + dur > end:
            total += start + dur - max(start, end)
            end = start + dur
    return total


def child(program):
    from darts_paddle.runtime import import_paddle

    paddle = import_paddle()
    import paddle.profiler as profiler

    run = {"search": search_runner, "eval": eval_runner}[program]()
    run()  # preparation, not profiled
    trace_dir = tempfile.mkdtemp(prefix="darts_paddle_profile_")
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU],
                             on_trace_ready=profiler.export_chrome_tracing(trace_dir))
    walls = []
    prof.start()
    for _ in range(ARGS.steps):
        t = time.time()
        run()
        walls.append(time.time() - t)
    prof.stop()
    events = op_events(trace_dir)
    by_kind, count = collections.Counter(), collections.Counter()
    for name, _, dur, _ in events:
        by_kind[kind_of(name)] += dur / 1e6 / ARGS.steps
        count[kind_of(name)] += 1
    return {"program": program, "paddle": paddle.__version__, "wall_s": sum(walls) / len(walls),
            "busy_s": covered([(s, d) for _, s, d, _ in events]) / 1e6 / ARGS.steps,
            "threads": len({tid for *_, tid in events}),
            "ops_s": sum(by_kind.values()), "ops": len(events) // ARGS.steps,
            "kinds": {k: [v, count[k] // ARGS.steps] for k, v in by_kind.most_common()},
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "FLAGS_paddle_num_threads",
                                                   "FLAGS_new_executor_serial_run",
                                                   "DARTS_PADDLE_DEPTHWISE")}}


def report(r):
    batch = ARGS.search_batch if r["program"] == "search" else ARGS.eval_batch
    title = {"search": f"search gradient pass ({ARGS.space})",
             "eval": "DARTS_V2 train step"}[r["program"]]
    print(f"\n{title}, batch {batch} (paddle {r['paddle']}, {r['env']}): wall {r['wall_s']:.2f} s, "
          f"some op running {r['busy_s']:.2f} s ({100 * r['busy_s'] / r['wall_s']:.0f} %), "
          f"summed op time {r['ops_s']:.2f} s over {r['ops']} ops on {r['threads']} executor "
          f"threads")
    print(f"| {'op kind':<34} | {'ops':>5} | {'s':>6} | {'share':>6} |")
    print(f"|{'-' * 36}|{'-' * 7}|{'-' * 8}|{'-' * 8}|")
    for kind, (seconds, n) in r["kinds"].items():
        print(f"| {kind:<34} | {n:>5} | {seconds:>6.2f} | {100 * seconds / r['ops_s']:>5.1f}% |")


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--programs", nargs="+", default=["search", "eval"], choices=["search", "eval"])
    p.add_argument("--search_batch", type=int, default=16)
    p.add_argument("--eval_batch", type=int, default=96)
    p.add_argument("--steps", type=int, default=2, help="profiled runs (averaged)")
    p.add_argument("--space", choices=["darts", "nb201"], default="darts",
                   help="the search space whose supernet the search program is")
    p.add_argument("--child", choices=["search", "eval"], help=argparse.SUPPRESS)
    ARGS = p.parse_args()
    if ARGS.child:
        print(json.dumps(child(ARGS.child)))
        return
    from bench.search_bench import child_result

    for program in ARGS.programs:
        report(child_result(__file__, ["--child", program, *sys.argv[1:]], program))


ARGS = None

if __name__ == "__main__":
    main()
