"""Side by side with PyTorch eager: the same networks, batches and threads, in one run.

    python bench/compare_torch.py [--quick] [--space darts|nb201] [--batches 16 64]
                                  [--steps 3] [--eval_steps 3]
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
           With --space nb201 instead: NAS-Bench-201's supernet (C 16, 5 cells per stage,
           5 ops, one alpha [6, 5]; search_bench.py --space nb201) against NAS-Bench-201's
           own search network, xautodl's TinyNetworkDarts (torch_reference/nb201.py:
           pip install xautodl==1.0.0 --no-deps), with its DARTS-V1 (1st-order) and
           DARTS-V2 (2nd-order) steps; no eval rows.
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
use them, 1 and 2 measured equal).  PyTorch's allocator: neither setting is best for every
row (its eval step was much slower with glibc's defaults, its search step slower with our
malloc settings), so each PyTorch child runs twice, with our settings ("tuned") and with
glibc's defaults ("glibc"), each in its own process, and every row takes PyTorch's better
figure of the two (the faster; for peak RSS the smaller) and names the setting that won;
--torch_malloc runs one setting only.  Our depthwise convs run on our kernel by
default (kernels/depthwise.py); `--depthwise paddle` times Paddle's own, `--depthwise
onednn` oneDNN's (onednn.py; OpenMP then gets both cores: OMP_NUM_THREADS=2).
The last line: `ratio ours/pytorch: search-1st X (setting), search-2nd X (setting),
eval-train X (setting)` at the largest batch run, against PyTorch's faster setting, named
when both ran (below 1: we are faster; no eval-train with --space nb201).  torch is
optional: without it the script says how to install it and exits with status 2 (so does
--space nb201 without xautodl).
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
XAUTODL_HINT = ("compare_torch --space nb201 needs NAS-Bench-201's search network: "
                "pip install xautodl==1.0.0 --no-deps")
EVAL = dict(C=36, layers=20, num_classes=10, arch="DARTS_V2", batch=96, auxiliary_weight=0.4)
MALLOCS = ("tuned", "glibc")  # PyTorch's allocator settings (torch_setup)


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


def search_model(space):
    """(supernet, its weights' optimizer, its architect) of the PyTorch side."""
    from bench.torch_reference import architect as ta

    if space == "nb201":
        from bench.torch_reference import nb201

        model = nb201.SearchNetwork(16, 5, 10)
        return (model, nb201.weight_optimizer(model),
                ta.TorchArchitect(model, weight_decay=nb201.WEIGHT_DECAY))
    from bench.torch_reference import models as tm

    model = tm.search_network(16, 10, 8)
    return model, ta.weight_optimizer(model), ta.TorchArchitect(model)


def torch_search_child(space, batch, steps, process_start, threads, interop, malloc):
    """The PyTorch mirror of search_bench.child: same step order, same batches."""
    import numpy as np

    torch = torch_setup(threads, interop, malloc)
    from bench.torch_reference import architect as ta

    model, optimizer, architect = search_model(space)
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


def run_torch_child(kind, args, malloc, batch=0):
    child_args = ["--child", kind, "--batch", str(batch), "--start", repr(time.time()),
                  "--steps", str(args.eval_steps if kind == "eval" else args.steps),
                  "--torch_threads", str(args.torch_threads), "--space", args.space,
                  "--torch_interop", str(args.torch_interop), "--torch_malloc", malloc]
    return search_bench.child_result(__file__, child_args,
                                     f"PyTorch {kind} batch {batch} ({malloc} malloc)")


def run_torch_children(kind, args, batch=0):
    """{malloc setting: the child's result} for each setting run (--torch_malloc: one)."""
    return {m: run_torch_child(kind, args, m, batch) for m in mallocs(args)}


def mallocs(args):
    return (args.torch_malloc,) if args.torch_malloc else MALLOCS


def best(theirs, higher=False):
    """(setting, figure): PyTorch's better figure of a row over its malloc settings."""
    pick = max if higher else min
    return pick(theirs.items(), key=lambda item: item[1])


# --------------------------------------------------------------------------- the table

PASSES = {"pass": 1, "step1": 2, "step2": 5}  # gradient passes per row (see the docstring)
SEARCH_ROWS = (("pass", "gradient pass"), ("step1", "1st-order step"), ("step2", "2nd-order step"))


def gflops(madds_per_sample, batch, passes, seconds):
    return 2 * 3 * madds_per_sample * batch * passes / seconds / 1e9


def per_setting(theirs, figure):
    """{malloc setting: figure(that setting's result)}."""
    return {m: figure(r) for m, r in theirs.items()}


def search_rows(ours, theirs):
    """(label, ours, {setting: PyTorch's}, higher is better) of one batch's search rows;
    `theirs`: {malloc setting: the PyTorch child's result}."""
    b, madds = ours["batch"], ours["madds"]
    rows = [(f"search b{b} start-up s", ours["first_done_s"],
             per_setting(theirs, lambda r: r["first_done_s"]), False)]
    for key, label in SEARCH_ROWS:
        rows.append((f"search b{b} {label} s", ours[key + "_s"],
                     per_setting(theirs, lambda r: r[key + "_s"]), False))
        rows.append((f"search b{b} {label} GFLOP/s",
                     gflops(madds, b, PASSES[key], ours[key + "_s"]),
                     per_setting(theirs, lambda r: gflops(madds, b, PASSES[key], r[key + "_s"])),
                     True))
    rows.append((f"search b{b} peak RSS GB", ours["rss_gb"],
                 per_setting(theirs, lambda r: r["rss_gb"]), False))
    return rows


def eval_rows(ours, theirs):
    b, madds = ours["batch"], ours["madds_M"] * 1e6
    return [(f"eval b{b} train step s", ours["step_s"],
             per_setting(theirs, lambda r: r["step_s"]), False),
            (f"eval b{b} train GFLOP/s", gflops(madds, b, 1, ours["step_s"]),
             per_setting(theirs, lambda r: gflops(madds, b, 1, r["step_s"])), True),
            (f"eval b{b} inference img/s", ours["infer_img_s"],
             per_setting(theirs, lambda r: r["infer_img_s"]), True),
            (f"eval b{b} inference GFLOP/s", 2 * madds * ours["infer_img_s"] / 1e9,
             per_setting(theirs, lambda r: 2 * madds * r["infer_img_s"] / 1e9), True),
            (f"eval b{b} peak RSS GB", ours["rss_MB"] / 1024,
             per_setting(theirs, lambda r: r["rss_gb"]), False)]


def repetitions(ours, theirs):
    """Every timed repetition of the search rows: a median hides what a noisy machine did."""
    b = ours["batch"]
    return [f"search b{b} {label} s: ours " + " ".join(f"{t:.2f}" for t in ours[k + "_all"])
            + "".join(f" | pytorch {m} " + " ".join(f"{t:.2f}" for t in r[k + "_all"])
                      for m, r in theirs.items())
            for k, label in SEARCH_ROWS]


def print_table(rows):
    """Ours against PyTorch's better setting per row; with both settings run, each
    setting's figure and the one that won."""
    settings_run = list(rows[0][2])
    both = len(settings_run) > 1
    print(f"{'':34} {'ours':>9} {'pytorch':>9} {'ours/pytorch':>13}"
          + ("".join(f" {m:>9}" for m in settings_run) + f" {'won':>6}" if both else ""))
    for label, a, theirs, higher in rows:
        won, b = best(theirs, higher)
        print(f"{label:34} {a:>9.2f} {b:>9.2f} {a / b:>13.2f}"
              + ("".join(f" {theirs[m]:>9.2f}" for m in settings_run) + f" {won:>6}"
                 if both else ""))


def settings(args, env):
    """Date, versions and the thread settings of both sides (env: our child's)."""
    from importlib.metadata import version

    import torch  # the version only; this process runs nothing

    xautodl = f", xautodl {version('xautodl')}" if args.space == "nb201" else ""
    malloc = {"tuned": "tuned malloc", "glibc": "glibc malloc defaults"}.get(
        args.torch_malloc, "per row the better of tuned malloc and glibc's defaults")
    return (f"{datetime.date.today()}, paddlepaddle {version('paddlepaddle')}, torch "
            f"{torch.__version__}{xautodl}, {os.cpu_count()} cores\n"
            "threads: ours " + " ".join(f"{k}={v}" for k, v in env.items())
            + f" DARTS_PADDLE_MALLOC={os.environ.get('DARTS_PADDLE_MALLOC', 'tuned')}"
            + f" DARTS_PADDLE_DEPTHWISE={depthwise_backend()}; "
            f"pytorch torch.set_num_threads({args.torch_threads}), "
            f"torch.set_num_interop_threads({args.torch_interop}), {malloc}")


def compare_search(batch, args):
    """Both sides' search rows at one batch size, each side and setting in its own process."""
    ours = search_bench.run_child(batch, args.steps, "darts", space=args.space)
    theirs = run_torch_children("search", args, batch)
    hooks = next(iter(theirs.values()))["madds"]
    per = ", ".join(f"{label} {3 * ours['madds'] * batch * PASSES[k] / 1e9:.1f}G"
                    for k, label in (("pass", "pass"), ("step1", "1st-order step"),
                                     ("step2", "2nd-order step")))
    print(f"search b{batch}: multiply-adds per sample forward: ours {ours['madds'] / 1e6:.1f}M "
          f"(PyTorch's hooks {hooks / 1e6:.1f}M: they miss the op weighting of the "
          f"weightless ops, elementwise there); per {per}", flush=True)
    return ours, theirs


def compare_eval(args):
    ours = eval_bench.run_child("cifar", EVAL["batch"], args.eval_steps, EVAL["arch"])
    theirs = run_torch_children("eval", args)
    hooks = next(iter(theirs.values()))["madds"]
    print(f"eval b{EVAL['batch']}: multiply-adds per sample forward: ours {ours['madds_M']:.1f}M "
          f"(PyTorch's hooks {hooks / 1e6:.1f}M); per train step "
          f"{3 * ours['madds_M'] * EVAL['batch'] / 1e3:.1f}G", flush=True)
    return ours, theirs


def ratio(name, ours, theirs, key):
    """name X (setting): ours over PyTorch's faster setting of `key`."""
    won, t = best(per_setting(theirs, lambda r: r[key]))
    return f"{name} {ours[key] / t:.2f}" + (f" ({won})" if len(theirs) > 1 else "")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", choices=["darts", "nb201"], default="darts",
                   help="the search rows' supernets: DARTS's, or NAS-Bench-201's against "
                        "xautodl's (no eval rows)")
    p.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    p.add_argument("--steps", type=int, default=3, help="timed search steps (median)")
    p.add_argument("--eval_steps", type=int, default=3, help="timed eval train steps (median)")
    p.add_argument("--quick", action="store_true",
                   help="batch 16 search rows and the eval rows (darts), 2 repetitions each")
    p.add_argument("--torch_threads", type=int, default=2)
    p.add_argument("--torch_interop", type=int, default=1)
    p.add_argument("--torch_malloc", choices=MALLOCS, default=None,
                   help="PyTorch's allocator, one setting only: our runtime's mallopt "
                        "settings or glibc's (default: both, each row taking the better)")
    p.add_argument("--depthwise", choices=DEPTHWISE_BACKENDS, default=None,
                   help="our depthwise kernels (DARTS_PADDLE_DEPTHWISE, default: the runtime's "
                        f"default, {DEPTHWISE_BACKENDS[0]})")
    p.add_argument("--child", choices=["search", "eval"], help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--start", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child == "search":
        print(json.dumps(torch_search_child(args.space, args.batch, args.steps, args.start,
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
    if args.space == "nb201" and importlib.util.find_spec("xautodl") is None:
        print(f"error: {XAUTODL_HINT}", file=sys.stderr)
        return 2
    if args.quick:
        args.batches, args.steps, args.eval_steps = [16], 2, 2
    if args.depthwise:  # read by our children's runtime.configure()
        os.environ["DARTS_PADDLE_DEPTHWISE"] = args.depthwise
    load_before = os.getloadavg()[0]  # other processes' load skews both sides
    cpu_before = search_bench.cpu_times()  # and so does a hypervisor's steal
    rows, ratios, env, reps = [], [], {}, []
    for b in args.batches:
        ours, theirs = compare_search(b, args)
        rows += search_rows(ours, theirs)
        reps += repetitions(ours, theirs)
        env = ours["env"]
        ratios = [ratio("search-1st", ours, theirs, "step1_s"),
                  ratio("search-2nd", ours, theirs, "step2_s")]
    if args.space == "darts":
        ours, theirs = compare_eval(args)
        rows += eval_rows(ours, theirs)
        ratios.append(ratio("eval-train", ours, theirs, "step_s"))
    print(settings(args, env or {"runtime": "defaults"}))
    print(f"machine load (1-minute average) at start {load_before:.2f}, at end "
          f"{os.getloadavg()[0]:.2f} (the run itself keeps about 2 busy); CPU time stolen by "
          f"the hypervisor over the run "
          f"{search_bench.steal_percent(cpu_before, search_bench.cpu_times()):.0f} %")
    print_table(rows)
    print("\n".join(reps))
    print("ratio ours/pytorch: " + ", ".join(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
