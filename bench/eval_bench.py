"""Evaluation-training benchmark: build, preparation and step times, throughput, memory.

    python bench/eval_bench.py [--configs cifar imagenet] [--steps 3]
                               [--cifar_batch 96] [--imagenet_batch 128] [--arch DARTS_V2]

Each configuration runs in its own process (peak RSS is per process), on random data:
  cifar      C 36, 20 layers, auxiliary head, drop path 0.2, 32x32, batch 96 (train.py)
  imagenet   C 48, 14 layers, auxiliary head, label smoothing, 224x224, batch 128
and reports
  build      building the train and inference programs
  first      the first train step (Paddle prepares the program) minus one steady step
  step       median of --steps steady train steps, and images/s
  infer      images/s of the inference program (after its own first run)
  ops        top-level ops of the train program
  rss        peak resident memory of the process
The last line is machine-readable JSON.  Both full configurations are heavy on a CPU
(an ImageNet step at batch 128 takes minutes on 2 cores): use --steps 1 or smaller
batches there.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":  # run as a script: bench and darts_paddle from the root
    sys.path.insert(0, ROOT)

from bench.search_bench import random_batches  # noqa: E402  (drawn apart from weights and masks)

DROP_PROB = 0.1  # drop path mid-training (the probability ramps from 0 to drop_path_prob)

CONFIGS = {
    "cifar": dict(kind="cifar", C=36, layers=20, num_classes=10, image_size=32,
                  auxiliary=True, drop_path_prob=0.2),
    "imagenet": dict(kind="imagenet", C=48, layers=14, num_classes=1000, image_size=224,
                     auxiliary=True, label_smooth=0.1, schedule="step", learning_rate=0.1,
                     weight_decay=3e-5),
}


def child(name, batch, steps, arch):
    import resource

    import numpy as np

    from darts_paddle.runtime import import_paddle

    import_paddle()
    from darts_paddle.registry import resolve_arch
    from darts_paddle.nets.networks import drop_path_masks
    from darts_paddle.runner import Runner
    from darts_paddle.train.programs import (TrainConfig, build_train_programs, multiply_adds,
                                             op_count)

    cfg = TrainConfig(**CONFIGS[name])
    t0 = time.time()
    programs = build_train_programs(cfg, resolve_arch(arch))
    build_s = time.time() - t0
    runner = Runner()
    runner.run_startup(programs.startup)
    rng = np.random.default_rng(0)
    runner.set_all(programs.initial_values(rng))
    data = random_batches(batch, cfg.image_size, cfg.num_classes)

    def feed():
        x, y = data()
        f = dict(x=x, y=y)
        if "drop_mask" in programs.train.feeds:
            f["drop_mask"] = drop_path_masks(rng, programs.network.drop_paths, batch, DROP_PROB)
        return f

    def timed(prog, f):
        t = time.time()
        runner.run(prog, **f)
        return time.time() - t

    first = timed(programs.train, feed())
    times = [timed(programs.train, feed()) for _ in range(steps)]
    step = float(np.median(times))
    f = feed()
    infer_feed = dict(x=f["x"], y=f["y"])
    timed(programs.infer, infer_feed)
    infer = float(np.median([timed(programs.infer, infer_feed) for _ in range(max(1, steps))]))
    return dict(config=name, arch=arch, batch=batch, params=programs.network.params.size,
                madds_M=round(multiply_adds(programs.infer) / 1e6, 1),
                ops=op_count(programs.train), infer_ops=op_count(programs.infer),
                build_s=round(build_s, 2), first_run_s=round(first - step, 2),
                step_s=round(step, 3), train_img_s=round(batch / step, 2),
                infer_img_s=round(batch / infer, 2),
                rss_MB=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def run_child(name, batch, steps, arch):
    """One configuration in its own process -> the child's result dict."""
    out = subprocess.run([sys.executable, __file__, "--child", name, "--steps", str(steps),
                          f"--{name}_batch", str(batch), "--arch", arch],
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["cifar", "imagenet"], choices=list(CONFIGS))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--cifar_batch", type=int, default=96)
    p.add_argument("--imagenet_batch", type=int, default=128)
    p.add_argument("--arch", default="DARTS_V2")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    batches = {"cifar": args.cifar_batch, "imagenet": args.imagenet_batch}
    if args.child:
        print(json.dumps(child(args.child, batches[args.child], args.steps, args.arch)))
        return
    results = []
    for name in args.configs:
        r = run_child(name, batches[name], args.steps, args.arch)
        results.append(r)
        print(f"{name:8s} {r['arch']} batch {r['batch']}: params {r['params']:,}, "
              f"{r['madds_M']}M mult-adds, train program {r['ops']} ops, "
              f"build {r['build_s']} s, first run +{r['first_run_s']} s, "
              f"step {r['step_s']} s ({r['train_img_s']} img/s), "
              f"inference {r['infer_img_s']} img/s, peak RSS {r['rss_MB']} MB", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
