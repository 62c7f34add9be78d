"""Search benchmark: build, preparation and step times, op counts, peak memory.

    python bench/search_bench.py [--batches 16 64] [--steps 3] [--quick] [--space nb201]
                                 [--methods darts daas dadarts pcdarts] [--processes 1 2]
                                 [--no_prefault]

Each batch size runs in its own process (peak RSS is per process).  Every child builds the
supernet of --space as train_search.py does with that space's defaults (darts: C 16, 8
layers; nb201: NAS-Bench-201's, C 16, 5 cells per stage, Nesterov, weight decay 5e-4;
CIFAR shapes, random data) with the second-order programs of each search method
(methods/; plain DARTS by default), and measures:
  startup   process start -> first finished second-order step, minus one steady step
  pass      one run of the gradient program (forward + backward)
  step1/2   a whole first-/second-order search step (architect + weight step)
  eigen     with --eigen: the Hessian-vector program's build ("hvp build") and its first
            run (preparation and one product, "hvp first"), then one lambda_max estimate at
            the search's defaults (--eigen_batches 1 cut into --eigen_batch_size 16,
            --eigen_iterations 10, the alphas' weight decay; search/collapse.py), its
            seconds and products; peak RSS then includes the program
  steal     the share of the machine's CPU time the hypervisor gave to other guests
            (/proc/stat) during start-up and during the whole child: on a shared virtual
            machine the figures above move with it
  heap      with --no_prefault: peak RSS minus RSS before the first step, the host memory
            the first steps take beyond what building leaves, which search_heap_bytes
            and a space's HEAP_SHARE are set from (the heap touched ahead would hide it)
Medians over --steps repetitions after a warm-up.  The last line is machine-readable.

--processes 2 runs the child as a data-parallel search under paddle.distributed.launch
(CPU processes and gloo here; on a GPU machine the same launch with --gpus): the batch is
the global one, each process takes its half, and the figures are rank 0's (peak RSS per
process).  On a 2-core machine two processes share the cores one process already uses, so
they measure the collectives' cost, not a speed-up.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":  # run as a script: bench and darts_paddle from the root
    sys.path.insert(0, ROOT)

DATA_SEED = 1  # the batches, drawn apart from the weights: compare_torch.py feeds PyTorch the same


def random_batches(batch, image_size=32, num_classes=10, seed=DATA_SEED):
    """() -> the next random (x, y) batch of a fixed sequence, as numpy."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return lambda: (rng.standard_normal((batch, 3, image_size, image_size)).astype(np.float32),
                    rng.integers(0, num_classes, batch).astype(np.int64))


def cpu_times():
    """(steal, total) CPU time of the whole machine in clock ticks (/proc/stat), or None
    where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]  # user .. steal
        if len(ticks) < 8:
            return None
    except (OSError, ValueError):
        return None
    return ticks[7], sum(ticks)


def steal_percent(before, after):
    """Percentage of the CPU time between two `cpu_times()` that was stolen (nan: unknown)."""
    if before is None or after is None or after[1] == before[1]:
        return float("nan")
    return 100.0 * (after[0] - before[0]) / (after[1] - before[1])


def rss_gb():
    """The process's resident memory now, in GB (VmRSS of /proc/self/status)."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 1024 ** 2


def search_config(space, method, world_size):
    """The SearchConfig train_search.py builds for a second-order search in `space` with
    every flag at its default (the space's own defaults applied), on CIFAR-10's shapes."""
    from darts_paddle.data.specs import get_spec
    from darts_paddle.search.flags import search_parser

    args = search_parser().parse_args(["--space", space.NAME, "--unrolled"])
    space.set_run_flags(args, given=set())
    return space.config(args, get_spec(args.dataset), method, world_size)


def child(batch, steps, process_start, method_name="darts", eigen=False, space_name="darts",
          prefault=True):
    import resource

    cpu_start = cpu_times()

    import numpy as np

    from darts_paddle import runtime

    runtime.import_paddle()
    from darts_paddle import distributed
    from darts_paddle.search.flags import search_parser
    from darts_paddle.search import collapse, loop
    from darts_paddle.search.architect import ON, Architect
    from darts_paddle.search.methods import ARCH, make_method
    from darts_paddle.search import spaces
    from darts_paddle.runner import Runner
    from darts_paddle.train.programs import multiply_adds

    space = spaces.of(space_name)
    method = make_method(method_name, space.LAYOUT)
    world = distributed.world_from_env()
    place = distributed.start(world) if world.distributed else None
    cfg = search_config(space, method, world.size)
    if prefault:  # as train_search does (search/loop.py): the first passes' heap touched ahead
        runtime.prefault(place or runtime.get_place(), space.heap_bytes(cfg, batch // world.size))
    t0 = time.time()
    programs = space.build_programs(cfg)
    build_s = time.time() - t0
    runner = Runner(place)
    runner.run_startup(programs.startup)
    rng = np.random.default_rng(0)
    runner.set_all(programs.initial_values(rng))
    batches = random_batches(batch)

    def data():  # this process's part of the next global batch
        x, y = batches()
        return x[world.part(batch)], y[world.part(batch)]
    second, first = Architect(runner, programs, True), Architect(runner, programs, False)
    second.set_epoch(25, 50)  # mid-search: every method's feeds on, past PC-DARTS's warm-up
    first.set_epoch(25, 50)

    def step(architect):
        t = time.time()
        train = data()
        architect.step(train, data(), 0.025)
        architect.weight_step(train)
        return time.time() - t

    built_gb = rss_gb()
    first_step = step(second)
    first_done, cpu_first_done = time.time(), cpu_times()
    timings = {"pass": [], "step1": [], "step2": []}
    for _ in range(steps):
        x, y = data()
        t = time.time()
        first.refresh()
        runner.run(programs["grad"], x=x, y=y, bn_update=ON, **first.feeds(ARCH))
        timings["pass"].append(time.time() - t)
    # no warm-up needed for first order: its programs all ran in the first step
    for _ in range(steps):
        timings["step1"].append(step(first))
        timings["step2"].append(step(second))
    med = {k: float(np.median(v)) for k, v in timings.items()}
    estimate = None
    if eigen:  # the search's own defaults
        defaults = search_parser().parse_args([])
        batches = collapse.cut([data() for _ in range(defaults.eigen_batches)],
                               defaults.eigen_batch_size)
        tic = time.time()
        programs.hessian()
        hvp = {"hvp_build_s": time.time() - tic}
        product, tic = collapse.AlphaHessian(first, batches), time.time()
        product(np.ones(product.size))
        hvp["hvp_first_s"] = time.time() - tic
        estimate = collapse.lambda_max(first, batches, defaults.eigen_iterations, seed=0,
                                       weight_decay=loop.eigen_weight_decay(defaults))
    ops = {name: len(p.program.global_block().ops) for name, p in programs.progs.items()}
    return {"space": space_name, "method": method_name, "batch": batch, "processes": world.size,
            "prefault": prefault, "built_rss_gb": built_gb,
            "build_s": build_s, "first_step_s": first_step,
            "startup_s": first_done - process_start - med["step2"], "ops": ops,
            "first_done_s": first_done - process_start,
            "madds": multiply_adds(programs["evaluate"]),
            "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "FLAGS_paddle_num_threads",
                                                   "FLAGS_new_executor_serial_run")},
            "depthwise": runtime.depthwise_backend(),
            "steal_startup_pct": steal_percent(cpu_start, cpu_first_done),
            "steal_pct": steal_percent(cpu_start, cpu_times()),
            **({"eigen_s": estimate.seconds, "eigen_passes": estimate.passes, **hvp}
               if estimate else {}),
            **{k + "_s": v for k, v in med.items()},
            **{k + "_all": v for k, v in timings.items()}}


def child_result(script, args, what):
    """Run `python script args` in its own process (peak RSS is per process) and return the
    JSON dict of its last `{` line; exit with its stderr if it failed."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                         cwd=ROOT)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        sys.exit(f"{what} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def run_child(batch, steps, method, processes=1, eigen=False, space="darts", prefault=True):
    args = ["--child", str(batch), "--steps", str(steps), "--start", repr(time.time()),
            "--methods", method, "--space", space] + (["--eigen"] if eigen else []) + (
        [] if prefault else ["--no_prefault"])
    if processes == 1:
        return child_result(__file__, args, f"batch {batch}")
    with tempfile.TemporaryDirectory() as logs:  # rank 0 prints its result to its log
        env = {k: v for k, v in os.environ.items() if not k.startswith("PADDLE_")}
        out = subprocess.run([sys.executable, "-m", "paddle.distributed.launch",
                              "--nproc_per_node", str(processes), "--log_dir", logs, __file__,
                              *args], capture_output=True, text=True, cwd=ROOT, env=env)
        text = open(os.path.join(logs, "workerlog.0")).read() if glob.glob(
            os.path.join(logs, "workerlog.0")) else ""
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        sys.exit(f"batch {batch} in {processes} processes failed:\n{text[-3000:]}"
                 f"{out.stderr[-2000:]}")
    return json.loads(lines[-1])


def table(results):
    space = results[0]["space"]
    if space != "darts":  # the default space's output as it was
        print(f"search space {space}")
    for method in dict.fromkeys(r["method"] for r in results):
        ops = next(r["ops"] for r in results if r["method"] == method)
        print(f"programs of {method} (PIR ops): " + ", ".join(f"{k} {v}" for k, v in ops.items()))
    heap = not results[0]["prefault"]
    print(f"{'method':>8} {'batch':>5} {'procs':>5} {'grad ops':>8} {'build s':>8} "
          f"{'startup s':>10} {'pass s':>7} {'1st-order s':>12} {'2nd-order s':>12} "
          f"{'2nd/1st':>8} {'img/s 1st':>10} {'img/s 2nd':>10} {'peak RSS GB':>12} "
          f"{'steal % start/all':>17}" + (f" {'built RSS GB':>12} {'heap GB':>8}" if heap else "")
          + (f" {'hvp build':>9} {'hvp first':>9} {'eigen s':>8} {'products':>8}"
             if "eigen_s" in results[0] else ""))
    for r in results:
        print(f"{r['method']:>8} {r['batch']:>5} {r['processes']:>5} {r['ops']['grad']:>8} "
              f"{r['build_s']:>8.1f} {r['startup_s']:>10.1f} {r['pass_s']:>7.2f} "
              f"{r['step1_s']:>12.2f} {r['step2_s']:>12.2f} {r['step2_s'] / r['step1_s']:>8.2f} "
              f"{r['batch'] / r['step1_s']:>10.1f} {r['batch'] / r['step2_s']:>10.1f} "
              f"{r['rss_gb']:>12.2f} "
              f"{r['steal_startup_pct']:>8.0f}/{r['steal_pct']:<8.0f}"
              + (f" {r['built_rss_gb']:>12.2f} {r['rss_gb'] - r['built_rss_gb']:>8.2f}"
                 if heap else "")
              + (f" {r['hvp_build_s']:>9.1f} {r['hvp_first_s']:>9.1f} {r['eigen_s']:>8.1f} "
                 f"{r['eigen_passes']:>8}" if "eigen_s" in r else ""))
    print("runtime settings: " + ", ".join(f"{k}={v}" for k, v in results[0]["env"].items())
          + f", depthwise convs on {results[0]['depthwise']} kernels")


def main():
    from darts_paddle.search.methods import METHODS
    from darts_paddle.search.spaces import DEFAULT as DEFAULT_SPACE, SPACES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    p.add_argument("--steps", type=int, default=3, help="timed repetitions (median)")
    p.add_argument("--quick", action="store_true", help="batch 16 only, 2 repetitions")
    p.add_argument("--methods", nargs="+", default=["darts"], choices=METHODS,
                   help="search methods to time")
    p.add_argument("--processes", type=int, nargs="+", default=[1],
                   help="data-parallel processes (paddle.distributed.launch) per row")
    p.add_argument("--eigen", action="store_true",
                   help="also time one lambda_max estimate at the search's defaults")
    p.add_argument("--space", choices=tuple(SPACES), default=DEFAULT_SPACE,
                   help="the search space whose supernet is timed")
    p.add_argument("--no_prefault", action="store_true",
                   help="leave the heap untouched ahead and report the first steps' heap")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--start", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.start, args.methods[0], args.eigen,
                               args.space, not args.no_prefault)))
        return
    if args.quick:
        args.batches, args.steps = [16], 2
    results = [run_child(b, args.steps, m, n, args.eigen, args.space, not args.no_prefault)
               for m in args.methods for b in args.batches for n in args.processes]
    table(results)
    last = {(r["method"], r["batch"], r["processes"]): r for r in results}[
        args.methods[0], max(args.batches), args.processes[0]]
    space = "" if args.space == DEFAULT_SPACE else f"space={args.space} "
    print(f"search_bench: {space}ops={last['ops']['grad']} startup_s={last['startup_s']:.1f} "
          f"pass{last['batch']}_s={last['pass_s']:.2f} step1_{last['batch']}_s={last['step1_s']:.2f} "
          f"step2_{last['batch']}_s={last['step2_s']:.2f} rss{last['batch']}_gb={last['rss_gb']:.2f}")


if __name__ == "__main__":
    main()
