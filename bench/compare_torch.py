"""Side by side with PyTorch eager: the same networks, batches and threads, in one run.

    python bench/compare_torch.py [--quick] [--batches 16 64] [--steps 3] [--eval_steps 3]
                                  [--torch_threads 2] [--torch_interop 1]
                                  [--torch_malloc tuned|glibc]
                                  [--depthwise kernel|paddle|onednn]

Rows (each side and each batch size in its own process: peak RSS is per process):
  search   the default supernet (C 16, 8 layers, 10 classes, 1,930,618 weights, 32x32):
           start-up (process start -> first finished second-order step), one gradient pass
           (forward + backward of weights and alphas), a first- and a second-order search
           step (architect step, then the weight step), as train_search does them.  Ours:
           bench/search_bench.py's child (build_search_programs + Architect); PyTorch:
           torch_reference/ (models.py + architect.py, the published algorithm).
  eval     DARTS_V2 on CIFAR (C 36, 20 layers, auxiliary head, weight 0.4, drop path
           masks at p = 0.1), one training step at batch 96 and inference images/s.  Ours:
           bench/eval_bench.py's child; PyTorch: train.py's step on torch_reference/models.py.
Both sides read the same seeded numpy batches (search_bench.random_batches) in the same
order; times are medians of --steps repetitions after the first (warm-up) step.
Multiply-adds are counted once, from our programs (every conv and matmul of a forward
pass, per sample; PyTorch's count with forward hooks is printed beside it); a pass is
taken as 3 forwards (forward, input gradient, weight gradient), a first-order step as 2
passes and a second-order one as 5, for both sides (PyTorch skips the weight gradients in
2 of its 5 passes: its GFLOP/s are nominal).
Threads, the same budget on both sides (2 cores here): ours runs with the runtime defaults
(runtime.py: single-threaded kernels, the executor running independent ops side by side);
PyTorch with torch.set_num_threads(2) (1 interop thread: eager autograd on the CPU does not
use them, 1 and 2 measured equal) and our malloc settings (1-2 % faster than glibc's
defaults at batch 64), the best we found.  Our depthwise convs run on our kernel by
default (kernels/depthwise.py); `--depthwise paddle` times Paddle's own, `--depthwise
onednn` oneDNN's (onednn.py; OpenMP then gets both cores: OMP_NUM_THREADS=2).
The last line: `ratio ours/pytorch: search-1st X, search-2nd X, eval-train X` at the
largest batch run (below 1: we are faster).  torch is optional: without it the script says
how to install it and exits with status 2.
"""

import argparse
import datetime
import importlib.util
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":  # run as a script: bench and darts_paddle from the root
    sys.path.insert(0, ROOT)

from bench import eval_bench, search_bench  # noqa: E402
from darts_paddle.runtime import DEPTHWISE_BACKENDS, depthwise_backend  # noqa: E402

INSTALL_HINT = ("compare_torch needs PyTorch: pip install torch==2.13.0 (CPU build) or "
                "pip install darts-paddle[torch]")
EVAL = dict(C=36, layers=20, num_classes=10, arch="DARTS_V2", batch=96, auxiliary_weight=0.4)


# --------------------------------------------------------------------------- PyTorch children

def torch_setup(threads, interop, malloc):
    if malloc == "tuned":  # the allocator settings our side runs with (runtime.py)
        from darts_paddle.runtime import tune_malloc

        tune_malloc()
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(interop)
    torch.manual_seed(0)
    return torch


def peak_rss_gb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def macs_by_hooks(model, x):
    """Multiply-adds of one sample's forward pass, every Conv2d and Linear (PyTorch's count)."""
    import torch

    total = []

    def hook(module, inputs, out):
        if isinstance(module, torch.nn.Conv2d):
            k = module.weight[0].numel()  # C_in / groups * kh * kw
            total.append(out[0].numel() * k)
        elif isinstance(module, torch.nn.Linear):
            total.append(out[0].numel() * module.in_features)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(x[:1])
    for h in handles:
        h.remove()
    return sum(total)


def torch_search_child(batch, steps, process_start, threads, interop, malloc):
    """The PyTorch mirror of search_bench.child: same step order, same batches."""
    import numpy as np

    torch = torch_setup(threads, interop, malloc)
    from bench.torch_reference import architect as ta
    from bench.torch_reference import models as tm

    model = tm.search_network(16, 10, 8)
    optimizer = ta.weight_optimizer(model)
    architect = ta.TorchArchitect(model)
    data = search_bench.random_batches(batch)
    tensors = lambda: tuple(map(torch.from_numpy, data()))  # noqa: E731

    def step(unrolled):
        t = time.time()
        ta.search_step(architect, optimizer, tensors(), tensors(), unrolled)
        return time.time() - t

    step(True)
    first_done = time.time()
    timings = {"pass": [], "step1": [], "step2": []}
    for _ in range(steps):
        x, y = tensors()
        t = time.time()
        optimizer.zero_grad()
        ta.search_loss(model, (x, y)).backward()
        timings["pass"].append(time.time() - t)
    for _ in range(steps):
        timings["step1"].append(step(False))
        timings["step2"].append(step(True))
    weights = sum(p.numel() for p in model.weight_parameters())
    return {"batch": batch, "first_done_s": first_done - process_start, "weights": weights,
            "madds": macs_by_hooks(model, x), "rss_gb": peak_rss_gb(),
            **{k + "_s": float(np.median(v)) for k, v in timings.items()},
            **{k + "_all": v for k, v in timings.items()}}


def torch_eval_child(steps, threads, interop, malloc):
    """The PyTorch mirror of eval_bench.child (CIFAR): train.py's step, then inference."""
    import numpy as np

    torch = torch_setup(threads, interop, malloc)
    import torch.nn.functional as F

    from bench.torch_reference import models as tm

    e = EVAL
    model = tm.eval_network("cifar", e["arch"], e["C"], e["num_classes"], e["layers"], True)
    model.drop_path_prob = eval_bench.DROP_PROB
    optimizer = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    data = search_bench.random_batches(e["batch"])

    def train_step():
        x, y = map(torch.from_numpy, data())
        t = time.time()
        model.train()
        optimizer.zero_grad()
        logits, logits_aux = model(x)
        loss = F.cross_entropy(logits, y) + e["auxiliary_weight"] * F.cross_entropy(logits_aux, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        return time.time() - t

    def infer(x):
        t = time.time()
        with torch.no_grad():
            model(x)
        return time.time() - t

    train_step()
    step = float(np.median([train_step() for _ in range(steps)]))
    x = torch.from_numpy(data()[0])
    model.eval()
    infer(x)
    infer_s = float(np.median([infer(x) for _ in range(max(1, steps))]))
    return {"batch": e["batch"], "step_s": step, "infer_img_s": e["batch"] / infer_s,
            "madds": macs_by_hooks(model, x), "rss_gb": peak_rss_gb()}


def run_torch_child(kind, args, batch=0):
    child_args = ["--child", kind, "--batch", str(batch), "--start", repr(time.time()),
                  "--steps", str(args.eval_steps if kind == "eval" else args.steps),
                  "--torch_threads", str(args.torch_threads),
                  "--torch_interop", str(args.torch_interop), "--torch_malloc", args.torch_malloc]
    return search_bench.child_result(__file__, child_args, f"PyTorch {kind} batch {batch}")


# --------------------------------------------------------------------------- the table

PASSES = {"pass": 1, "step1": 2, "step2": 5}  # gradient passes per row (see the docstring)


def gflops(madds_per_sample, batch, passes, seconds):
    return 2 * 3 * madds_per_sample * batch * passes / seconds / 1e9


def search_rows(ours, theirs):
    b, madds = ours["batch"], ours["madds"]
    rows = [(f"search b{b} start-up s", ours["first_done_s"], theirs["first_done_s"])]
    for key, label in (("pass", "gradient pass"), ("step1", "1st-order step"),
                       ("step2", "2nd-order step")):
        rows.append((f"search b{b} {label} s", ours[key + "_s"], theirs[key + "_s"]))
        rows.append((f"search b{b} {label} GFLOP/s",
                     gflops(madds, b, PASSES[key], ours[key + "_s"]),
                     gflops(madds, b, PASSES[key], theirs[key + "_s"])))
    rows.append((f"search b{b} peak RSS GB", ours["rss_gb"], theirs["rss_gb"]))
    return rows


def eval_rows(ours, theirs):
    b, madds = ours["batch"], ours["madds_M"] * 1e6
    return [(f"eval b{b} train step s", ours["step_s"], theirs["step_s"]),
            (f"eval b{b} train GFLOP/s", gflops(madds, b, 1, ours["step_s"]),
             gflops(madds, b, 1, theirs["step_s"])),
            (f"eval b{b} inference img/s", ours["infer_img_s"], theirs["infer_img_s"]),
            (f"eval b{b} inference GFLOP/s", 2 * madds * ours["infer_img_s"] / 1e9,
             2 * madds * theirs["infer_img_s"] / 1e9),
            (f"eval b{b} peak RSS GB", ours["rss_MB"] / 1024, theirs["rss_gb"])]


def repetitions(ours, theirs):
    """Every timed repetition of the search rows: a median hides what a noisy machine did."""
    b = ours["batch"]
    return [f"search b{b} {label} s: ours " + " ".join(f"{t:.2f}" for t in ours[k + "_all"])
            + " | pytorch " + " ".join(f"{t:.2f}" for t in theirs[k + "_all"])
            for k, label in (("pass", "gradient pass"), ("step1", "1st-order step"),
                             ("step2", "2nd-order step"))]


def print_table(rows):
    print(f"{'':34} {'ours':>9} {'pytorch':>9} {'ours/pytorch':>13}")
    for label, a, b in rows:
        print(f"{label:34} {a:>9.2f} {b:>9.2f} {a / b:>13.2f}")


def settings(args, env):
    """Date, versions and the thread settings of both sides (env: our child's)."""
    from importlib.metadata import version

    import torch  # the version only; this process runs nothing

    return (f"{datetime.date.today()}, paddlepaddle {version('paddlepaddle')}, torch "
            f"{torch.__version__}, {os.cpu_count()} cores\n"
            "threads: ours " + " ".join(f"{k}={v}" for k, v in env.items())
            + f" DARTS_PADDLE_MALLOC={os.environ.get('DARTS_PADDLE_MALLOC', 'tuned')}"
            + f" DARTS_PADDLE_DEPTHWISE={depthwise_backend()}; "
            f"pytorch torch.set_num_threads({args.torch_threads}), "
            f"torch.set_num_interop_threads({args.torch_interop}), "
            + ("tuned malloc" if args.torch_malloc == "tuned" else "glibc malloc defaults"))


def compare_search(batch, args):
    """Both sides' search rows at one batch size, each in its own process."""
    ours = search_bench.run_child(batch, args.steps, "darts")
    theirs = run_torch_child("search", args, batch)
    per = ", ".join(f"{label} {3 * ours['madds'] * batch * PASSES[k] / 1e9:.1f}G"
                    for k, label in (("pass", "pass"), ("step1", "1st-order step"),
                                     ("step2", "2nd-order step")))
    print(f"search b{batch}: multiply-adds per sample forward: ours {ours['madds'] / 1e6:.1f}M "
          f"(PyTorch's hooks {theirs['madds'] / 1e6:.1f}M: they miss the op weighting of the "
          f"weightless ops, elementwise there); per {per}", flush=True)
    return ours, theirs


def compare_eval(args):
    ours = eval_bench.run_child("cifar", EVAL["batch"], args.eval_steps, EVAL["arch"])
    theirs = run_torch_child("eval", args)
    print(f"eval b{EVAL['batch']}: multiply-adds per sample forward: ours {ours['madds_M']:.1f}M "
          f"(PyTorch's hooks {theirs['madds'] / 1e6:.1f}M); per train step "
          f"{3 * ours['madds_M'] * EVAL['batch'] / 1e3:.1f}G", flush=True)
    return ours, theirs


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    p.add_argument("--steps", type=int, default=3, help="timed search steps (median)")
    p.add_argument("--eval_steps", type=int, default=3, help="timed eval train steps (median)")
    p.add_argument("--quick", action="store_true",
                   help="batch 16 search rows and the eval rows, 2 repetitions each")
    p.add_argument("--torch_threads", type=int, default=2)
    p.add_argument("--torch_interop", type=int, default=1)
    p.add_argument("--torch_malloc", choices=["tuned", "glibc"], default="tuned",
                   help="PyTorch's allocator: our runtime's mallopt settings or glibc's")
    p.add_argument("--depthwise", choices=DEPTHWISE_BACKENDS, default=None,
                   help="our depthwise kernels (DARTS_PADDLE_DEPTHWISE, default: the runtime's "
                        f"default, {DEPTHWISE_BACKENDS[0]})")
    p.add_argument("--child", choices=["search", "eval"], help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--start", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child == "search":
        print(json.dumps(torch_search_child(args.batch, args.steps, args.start,
                                            args.torch_threads, args.torch_interop,
                                            args.torch_malloc)))
        return 0
    if args.child == "eval":
        print(json.dumps(torch_eval_child(args.steps, args.torch_threads, args.torch_interop,
                                          args.torch_malloc)))
        return 0
    if importlib.util.find_spec("torch") is None:
        print(f"error: {INSTALL_HINT}", file=sys.stderr)
        return 2
    if args.quick:
        args.batches, args.steps, args.eval_steps = [16], 2, 2
    if args.depthwise:  # read by our children's runtime.configure()
        os.environ["DARTS_PADDLE_DEPTHWISE"] = args.depthwise
    load_before = os.getloadavg()[0]  # other processes' load skews both sides
    cpu_before = search_bench.cpu_times()  # and so does a hypervisor's steal
    rows, ratios, env, reps = [], {}, {}, []
    for b in args.batches:
        ours, theirs = compare_search(b, args)
        rows += search_rows(ours, theirs)
        reps += repetitions(ours, theirs)
        env = ours["env"]
        ratios["search-1st"] = ours["step1_s"] / theirs["step1_s"]
        ratios["search-2nd"] = ours["step2_s"] / theirs["step2_s"]
    ours, theirs = compare_eval(args)
    rows += eval_rows(ours, theirs)
    ratios["eval-train"] = ours["step_s"] / theirs["step_s"]
    print(settings(args, env or {"runtime": "defaults"}))
    print(f"machine load (1-minute average) at start {load_before:.2f}, at end "
          f"{os.getloadavg()[0]:.2f} (the run itself keeps about 2 busy); CPU time stolen by "
          f"the hypervisor over the run "
          f"{search_bench.steal_percent(cpu_before, search_bench.cpu_times()):.0f} %")
    print_table(rows)
    print("\n".join(reps))
    print("ratio ours/pytorch: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
