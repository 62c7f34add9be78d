"""Depthwise convolution kernels side by side: forward + both gradients of one conv.

    python bench/kernel_bench.py [--batch 64] [--channels 64] [--size 32] [--steps 10]
                                 [--threads 1 2]

For every kind of depthwise conv in the networks (sep 3x3 / 5x5, dil 3x3 / 5x5 at
dilation 2, 3x3 at stride 2), one program computes the conv and the gradients of its
input and weights under a given output gradient, on each backend:
  paddle   Paddle's default CPU kernel (DARTS_PADDLE_DEPTHWISE=paddle)
  onednn   oneDNN's, placed by onednn.py (DARTS_PADDLE_DEPTHWISE=onednn); float32 only
  kernel   ours (kernels/depthwise.py, the default)
Each thread count runs in its own process with OMP_NUM_THREADS and
DARTS_PADDLE_KERNEL_THREADS set to it (Paddle's default kernel is single-threaded: its
columns measure the same thing).  Inputs, weights and the output gradient live in the
scope (no feeds); a run fetches one element of each gradient.  Medians of --steps runs
after a warm-up, in milliseconds.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":  # run as a script: bench and darts_paddle from the root
    sys.path.insert(0, ROOT)

from bench import search_bench  # noqa: E402

KINDS = {"sep 3x3": (3, 1, 1), "sep 5x5": (5, 1, 1), "dil 3x3": (3, 1, 2),
         "dil 5x5": (5, 1, 2), "3x3 stride 2": (3, 2, 1)}  # name: kernel, stride, dilation
BACKENDS = ("paddle", "onednn", "kernel")


def conv_program(backend, batch, channels, size, kernel, stride, dilation):
    from darts_paddle.kernels import depthwise
    from darts_paddle.paddle_static import F, paddle
    from darts_paddle.runner import Prog

    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.create_parameter([batch, channels, size, size], "float32", "x")
        w = paddle.static.create_parameter([channels, 1, kernel, kernel], "float32", "w")
        padding = dilation * (kernel // 2)
        if backend == "kernel":
            y = depthwise.depthwise_conv2d(x, [w], stride, [dilation])
        else:
            y = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation,
                         groups=channels)
        r = paddle.static.create_parameter(y.shape, "float32", "r")
        r.stop_gradient = True
        gx, gw = paddle.static.gradients([y], [x, w], target_gradients=[r])
        fetch = [gx[0, 0, 0, 0], gw[0, 0, 0, 0]]
    return Prog(main, [], fetch), startup, {"x": x.shape, "w": w.shape, "r": r.shape}


def child(args):
    import numpy as np

    from darts_paddle.kernels import depthwise
    from darts_paddle.paddle_static import paddle
    from darts_paddle.runner import Runner

    if not depthwise.available():
        sys.exit("kernel_bench: our kernel could not be built (see the line above)")
    rng = np.random.default_rng(0)
    times = {}
    for backend in BACKENDS:
        for name, (kernel, stride, dilation) in KINDS.items():
            prog, startup, shapes = conv_program(backend, args.batch, args.channels, args.size,
                                                 kernel, stride, dilation)
            runner = Runner(paddle.CPUPlace(), depthwise=backend)
            runner.run_startup(startup)
            for var, shape in shapes.items():
                runner.set(var, rng.standard_normal(shape))
            runner.run(prog)  # warm-up: kernel choice, allocations
            seconds = []
            for _ in range(args.steps):
                tic = time.perf_counter()
                runner.run(prog)
                seconds.append(time.perf_counter() - tic)
            times[f"{backend}/{name}"] = 1000 * float(np.median(seconds))
    return {"threads": int(os.environ["OMP_NUM_THREADS"]), "ms": times}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="timed repetitions (median)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    shape = ["--batch", str(args.batch), "--channels", str(args.channels), "--size",
             str(args.size), "--steps", str(args.steps), "--child"]
    results = []
    for threads in args.threads:
        os.environ["OMP_NUM_THREADS"] = os.environ["DARTS_PADDLE_KERNEL_THREADS"] = str(threads)
        results.append(search_bench.child_result(__file__, shape, f"{threads} threads"))
    print(f"forward + backward of one depthwise conv, batch {args.batch}, {args.channels} "
          f"channels, {args.size}x{args.size}, float32: median ms of {args.steps} runs "
          f"(load average {os.getloadavg()[0]:.2f})")
    columns = [f"{b} {r['threads']}t" for r in results for b in BACKENDS]
    print(f"{'conv':>13} " + " ".join(f"{c:>10}" for c in columns))
    for name in KINDS:
        print(f"{name:>13} " + " ".join(f"{r['ms'][f'{b}/{name}']:>10.1f}"
                                        for r in results for b in BACKENDS))


if __name__ == "__main__":
    main()
