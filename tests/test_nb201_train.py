"""train.py --arch with a NAS-Bench-201 cell: the network against the benchmark's own
parameter counts, its cell against a numpy reference, --arch resolution, NAS-Bench-201's
schedule, Nesterov's step, and a run that finishes, resumes and exports."""

import collections
import dataclasses
import glob
import itertools
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

paddle = import_paddle()

from darts_paddle import cli  # noqa: E402
from darts_paddle.errors import UserError  # noqa: E402
from darts_paddle.nb201 import arch, table  # noqa: E402
from darts_paddle.nets.nb201 import Cell, NB201Network  # noqa: E402
from darts_paddle.nets.ops import BN_EPS, Context  # noqa: E402
from darts_paddle.nets.params import ParamStore, SharedVars, StatsStore  # noqa: E402
from darts_paddle.registry import registry_from_module, resolve_arch  # noqa: E402
from darts_paddle.runner import Prog, Runner  # noqa: E402
from darts_paddle.storage.checkpoint import load_checkpoint  # noqa: E402
from darts_paddle.train import flags, loop  # noqa: E402
from darts_paddle.train.programs import NB201, TrainConfig, build_train_programs  # noqa: E402
from tests.helpers.numpy_ops import np_avg_pool, np_batch_norm, np_conv, relu  # noqa: E402

import train as train_script  # noqa: E402
import train_imagenet as train_imagenet_script  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
needs_table = pytest.mark.skipif(not table.available(),
                                 reason="pip install 'darts-paddle[nb201]'")

ALL_SKIP = ("skip_connect",) * 6
ALL_NONE = ("none",) * 6
MIXED = ("nor_conv_1x1", "avg_pool_3x3", "none", "skip_connect", "nor_conv_3x3", "nor_conv_1x1")
ZERO_NODE = ("none", "nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1",
             "nor_conv_3x3")  # node 1 is zeros, which two edges read


# --------------------------------------------------------------------------- parameters

@needs_table
@pytest.mark.parametrize("ops", [ALL_SKIP, arch.parse(arch.EXAMPLE), ALL_NONE, MIXED])
def test_the_network_has_the_parameters_the_benchmark_counts(ops):
    """NB201's count (xautodl's count_parameters_in_MB): every trainable weight, BN's
    affine ones included, its running statistics not; C 16, N 5, 3 input channels, and
    10, 100 or 120 classes."""
    for dataset, classes in (("cifar10", 10), ("cifar100", 100), ("imagenet", 120)):
        net = NB201Network(ops, C=16, N=5, num_classes=classes, in_channels=3)
        assert net.params.size == round(table.lookup(ops, dataset).params_mb * 1e6), dataset


CONV_PARAMS = {"nor_conv_1x1": 28_000, "nor_conv_3x3": 243_040}  # 5 cells at 16, 32, 64


@needs_table
def test_every_cell_has_the_count_of_one_of_its_trainings():
    """Over the whole table: the network's count is one of the counts the benchmark
    recorded for the cell's trainings (seeds), always.  The seeds disagree for 204 cells
    by one convolution, and the first seed, which table.lookup reports, is off in 150 of
    them: NAS-Bench-201's known fault (D-X-Y/NATS-Bench#36, docs/nb201.md).  A cell's count
    depends on its ops, not on their edges (every op keeps C channels), so one network per
    multiset of ops counts them all."""
    rows = table.rows("cifar10")
    size = {}
    off_first, seeds_disagree = collections.Counter(), 0
    for ops in itertools.product(arch.OPS, repeat=6):
        multiset = tuple(sorted(ops))
        if multiset not in size:
            size[multiset] = NB201Network(ops).params.size
        ours = size[multiset]
        counts = [round(mb * 1e6) for mb in rows[table.key(ops)]["model_size"]]
        assert ours in counts, ops
        seeds_disagree += len(set(counts)) > 1
        if counts[0] != ours:
            off_first[counts[0] - ours] += 1
    assert seeds_disagree == 204
    assert set(abs(d) for d in off_first) == set(CONV_PARAMS.values())
    assert sum(off_first.values()) == 150
    # the NATS-Bench issue's cell: 0.802426 MB in its 12-epoch record, ours
    cell = arch.parse("|skip_connect~0|+|none~0|nor_conv_3x3~1|+|avg_pool_3x3~0|"
                      "nor_conv_3x3~1|nor_conv_3x3~2|")
    assert NB201Network(cell).params.size == 802_426


# --------------------------------------------------------------------------- the cell

class NumpyCell:
    """The paper's cell in float64: node j = sum over i < j of op_{i->j}(node i), 'none'
    adding zero; the ops ReLU-conv-BN (affine) and the 3x3 mean over the pixels inside."""

    def __init__(self, ops, weights, stats, training):
        self.ops, self.w, self.stats, self.training = ops, weights, stats, training

    def bn(self, x, name):
        return np_batch_norm(x, self.w[name + ".weight"], self.w[name + ".bias"], BN_EPS,
                             None if self.training else self.stats[name])

    def op(self, op, x, name):
        if op == "none":
            return 0.0 * x
        if op == "skip_connect":
            return x
        if op == "avg_pool_3x3":
            return np_avg_pool(x, 1)
        pad = {"nor_conv_1x1": 0, "nor_conv_3x3": 1}[op]
        return self.bn(np_conv(relu(x), self.w[name + ".conv"], 1, pad), name + ".bn")

    def __call__(self, x):
        nodes = [x]
        for j in range(1, 4):
            nodes.append(sum(self.op(self.ops[k], nodes[i], f"c.layers.{k}")
                             for k, (i, to) in enumerate(arch.EDGES) if to == j))
        return nodes[3]


@pytest.mark.parametrize("ops", [ZERO_NODE, arch.parse(arch.EXAMPLE)])
@pytest.mark.parametrize("training", [False, True])
def test_cell_equals_numpy_reference(ops, training):
    C, batch, size = 3, 2, 5
    params, stats = ParamStore("t"), StatsStore("t_bn")
    cell = Cell(params, stats, "c", C, ops)
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [-1, C, size, size], "float64")
        shared = SharedVars("float64")
        params.materialize(shared)
        stats.materialize(shared)
        out = cell(x, Context(training=training))
    runner = Runner(paddle.CPUPlace(), dtype="float64")
    runner.run_startup(startup)
    rng = np.random.default_rng(3)
    banks = {b: rng.uniform(-0.5, 0.5, shape) for b, shape in params.bank_shapes().items()}
    mean, var = rng.standard_normal(stats.size), rng.uniform(0.5, 2.0, stats.size)
    runner.set_all({**banks, "t_bn.mean": mean, "t_bn.var": var})
    feed = rng.standard_normal((batch, C, size, size))
    got = runner.run(Prog(main, ["x"], [out]), x=feed)[0]
    bn_stats = {e.name: (mean[e.offset:e.offset + e.channels], var[e.offset:e.offset + e.channels])
                for e in stats.entries}
    expected = NumpyCell(ops, params.unbank(banks), bn_stats, training)(feed)
    assert got.shape == expected.shape == feed.shape
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-8)


# --------------------------------------------------------------------------- --arch

def test_arch_strings_names_and_json_resolve_to_the_cell(tmp_path):
    ops = arch.parse(arch.EXAMPLE)
    assert resolve_arch(arch.EXAMPLE, {}, cells=arch) == ops
    mine = types.ModuleType("genotypes")
    mine.MY_CELL, mine.BROKEN = "  " + arch.EXAMPLE + "\n", "|nor_conv_3x3~0|+|none~0|"
    mine.NOT_A_CELL = "a docstring-like string"
    registry = registry_from_module(mine)
    assert set(registry) == {"MY_CELL", "BROKEN"}
    assert resolve_arch("MY_CELL", registry, cells=arch) == ops
    with pytest.raises(UserError, match="genotype 'BROKEN' in the registry is broken: .*"
                                        "expected 3 nodes"):
        resolve_arch("BROKEN", registry, cells=arch)
    path = arch.save_json(ops, tmp_path / "genotype.json")
    assert resolve_arch(str(path), {}, cells=arch) == ops
    # a DARTS genotype JSON still resolves to its Genotype
    assert resolve_arch("DARTS_V2", cells=arch) == resolve_arch("DARTS_V2")


def test_where_darts_genotypes_are_built_a_cell_is_one_error(tmp_path):
    path = str(arch.save_json(arch.parse(arch.EXAMPLE), tmp_path / "genotype.json"))
    mine = types.ModuleType("genotypes")
    mine.MY_CELL = arch.EXAMPLE
    for text, registry in ((arch.EXAMPLE, {}), ("MY_CELL", registry_from_module(mine)),
                           (path, {})):
        with pytest.raises(UserError, match="NAS-Bench-201|'nb201' space") as info:
            resolve_arch(text, registry)
        assert "train.py --arch" in str(info.value)


# --------------------------------------------------------------------------- the schedule

def test_a_new_run_takes_nb201s_schedule_for_the_flags_not_given(monkeypatch):
    argv = ["--arch", arch.EXAMPLE, "--epochs", "3", "--layers", "2"]
    parser = flags.train_parser()
    args = parser.parse_args(argv)
    logged = []
    monkeypatch.setattr(loop.log, "info", lambda text, *values: logged.append(text % values))
    loop.nb201_schedule(args, cli.given_flags(parser, argv))
    assert (args.epochs, args.layers) == (3, 2)  # given
    assert {k: getattr(args, k) for k in flags.NB201_FLAGS if k not in ("epochs", "layers")} == {
        "batch_size": 256, "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
        "grad_clip": 0.0, "init_channels": 16, "drop_path_prob": 0.0}
    (line,) = logged
    assert "--batch_size 256 --learning_rate 0.1" in line and "--epochs" not in line
    assert "Nesterov" in line


def test_nesterov_momentum_without_clipping():
    """NB201's SGD (PyTorch's nesterov=True): v <- mu v + g (g with weight decay),
    w <- w - lr (g + mu v); grad_clip 0 clips nothing, where any other value clips."""
    cfg = TrainConfig(kind=NB201, C=4, layers=1, image_size=8, epochs=4, learning_rate=0.1,
                      nesterov=True, grad_clip=0.0, weight_decay=5e-4)
    x, y = np.random.default_rng(1).standard_normal((8, 3, 8, 8)), np.arange(8)

    def steps(cfg, count):
        """The weights and velocities after each of `count` steps on the batch, from w0."""
        programs = build_train_programs(cfg, MIXED)
        runner = Runner(paddle.CPUPlace())
        runner.run_startup(programs.startup)
        runner.set_all(programs.initial_values(np.random.default_rng(0)))
        banks = list(programs.network.params.banks)
        states = [({b: runner.get(b) for b in banks}, None)]
        for _ in range(count):
            runner.run(programs.train, x=x, y=y)
            states.append(({b: runner.get(b) for b in banks},
                           {b: runner.get(programs.optimizer_state["velocity/" + b])
                            for b in banks}))
        return states

    (w0, _), (w1, v1), (w2, v2) = steps(cfg, 2)
    mu, lr = cfg.momentum, np.float32(cfg.learning_rate)
    for b in w0:  # the first velocity is the gradient itself
        np.testing.assert_allclose(w1[b], w0[b] - lr * (1 + mu) * v1[b], rtol=0, atol=2e-7)
        g2 = v2[b] - mu * v1[b]
        np.testing.assert_allclose(w2[b], w1[b] - lr * (g2 + mu * v2[b]), rtol=0, atol=2e-7)

    def gradient_norm(w0, v1):  # the velocity less the weight decay, added after clipping
        return np.sqrt(sum(float(((v1[b] - cfg.weight_decay * w0[b]).astype(np.float64) ** 2)
                                 .sum()) for b in w0))

    free = gradient_norm(w0, v1)
    (w0, _), (_, v1) = steps(dataclasses.replace(cfg, grad_clip=free / 4), 1)
    assert gradient_norm(w0, v1) == pytest.approx(free / 4, rel=1e-4)


@pytest.mark.parametrize("script, argv, message", [
    (train_script, ["--auxiliary"], "--auxiliary: NAS-Bench-201's network has no auxiliary"),
    (train_script, ["--drop_path_prob", "0.3"], "no drop path"),
    (train_imagenet_script, [], "is a NAS-Bench-201 cell: train it with train.py"),
])
def test_what_the_network_lacks_is_one_error_line(script, argv, message, tmp_path, monkeypatch,
                                                  capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.run_main(script.main, ["--arch", arch.EXAMPLE, *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


# --------------------------------------------------------------------------- train.py

def smoke_flags(root, save, *extra):
    return ["--dataset", "fashion_mnist", "--data", root, "--save", save, "--epochs", "1",
            "--max_steps", "2", "--batch_size", "8", *extra]


@pytest.mark.slow
@pytest.mark.subprocess
def test_train_py_trains_a_cell_resumes_it_bit_identically_and_exports(fashion_root, tmp_path,
                                                                       monkeypatch):
    """The script with an arch string on its command line, one epoch; --resume to two;
    the same two epochs in one run from the cell's genotype.json; --export."""
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), "--arch", arch.EXAMPLE,
                           *smoke_flags(fashion_root, "cut")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    (cut,) = glob.glob(str(tmp_path / "eval-cut-*"))
    arrays, meta = load_checkpoint(os.path.join(cut, "checkpoint.npz"))
    assert meta["genotype"] == arch.to_json(arch.parse(arch.EXAMPLE)) and meta["epoch"] == 1
    config = meta["config"]
    assert (config["kind"], config["C"], config["layers"], config["nesterov"],
            config["grad_clip"], config["learning_rate"]) == (NB201, 16, 5, True, 0.0, 0.1)
    log = open(os.path.join(cut, "log.txt")).read()
    assert "NAS-Bench-201's schedule" in log and "param size = 1.288218MB" in log
    assert os.path.isfile(os.path.join(cut, "best.npz"))

    monkeypatch.chdir(tmp_path)
    assert cli.run_main(train_script.main, ["--resume", cut, "--epochs", "2", "--export"]) == 0
    json_path = str(arch.save_json(arch.parse(arch.EXAMPLE), tmp_path / "genotype.json"))
    assert cli.run_main(train_script.main, smoke_flags(fashion_root, "full", "--arch",
                                                       json_path, "--epochs", "2")) == 0
    (full,) = glob.glob(str(tmp_path / "eval-full-*"))
    (a, meta_a), (b, meta_b) = (load_checkpoint(os.path.join(d, "checkpoint.npz"))
                                for d in (full, cut))
    assert meta_a["epoch"] == meta_b["epoch"] == 2 and set(a) == set(b)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert not np.array_equal(a["net.vector"], arrays["net.vector"])  # the second epoch ran
    assert glob.glob(os.path.join(cut, "inference", "model.*"))
