"""PyTorch checkpoints of the original release's layout: bench/torch_reference/models.py
builds them, the converter maps them into our banks, and our networks then compute what
PyTorch computes (logits, training losses with the auxiliary head, search loss and alpha
gradients).

The PyTorch side is the independent computation here: autograd and PyTorch's own kernels
on the published module tree, with every weight and BN statistic randomised."""

import logging
import os
import sys

import numpy as np
import pytest

from darts_paddle.runtime import configure

configure()
torch = pytest.importorskip("torch")

from darts_paddle.runtime import import_paddle  # noqa: E402

paddle = import_paddle()

import torch.nn.functional as TF  # noqa: E402

import genotypes as G  # noqa: E402
from darts_paddle import cli  # noqa: E402
from darts_paddle.search import loop as search_loop  # noqa: E402
from darts_paddle.convert_torch import convert as convert_torch, torch_checkpoint  # noqa: E402
from darts_paddle.search import state as search_state  # noqa: E402
from darts_paddle.train import loop  # noqa: E402
from darts_paddle.train import state as train_state  # noqa: E402
from bench.torch_reference import models as tm  # noqa: E402
from darts_paddle.search.architect import OFF  # noqa: E402
from darts_paddle.storage.checkpoint import load_checkpoint  # noqa: E402
from darts_paddle.errors import UserError  # noqa: E402
from darts_paddle.genotype import Genotype, format_genotype, genotype_from_json  # noqa: E402
from darts_paddle.nets.networks import build_network  # noqa: E402
from darts_paddle.search.programs import SearchConfig, build_search_programs  # noqa: E402
from darts_paddle.runner import Runner  # noqa: E402
from darts_paddle.search.supernet import ALPHAS  # noqa: E402
from darts_paddle.train.programs import build_train_programs  # noqa: E402

import train as train_script  # noqa: E402
from tests.helpers import data_fixtures as fx  # noqa: E402

pytestmark = pytest.mark.torch

# every op kind: strided and plain skip_connect, both pools (strided too), all convs
ALL_OPS = Genotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("dil_conv_3x3", 0), ("dil_conv_5x5", 2),
            ("avg_pool_3x3", 1), ("max_pool_3x3", 3), ("skip_connect", 0), ("sep_conv_7x7", 4)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("skip_connect", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("dil_conv_5x5", 2),
            ("sep_conv_3x3", 1), ("conv_7x1_1x7", 0), ("skip_connect", 2), ("dil_conv_3x3", 1)],
    reduce_concat=[2, 3, 4, 5])
ALL_OPS_ARCH = format_genotype(ALL_OPS)


def randomize(net, seed):
    """Random weights (PyTorch's init under a seed) and random BN scales, shifts and running
    statistics, so that no mapping mistake can hide behind ones and zeros."""
    torch.manual_seed(seed)
    for module in net.modules():  # redraw every conv / linear under this seed
        if hasattr(module, "reset_parameters") and not isinstance(module, torch.nn.BatchNorm2d):
            module.reset_parameters()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.3)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(123)
                if module.affine:
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.normal_(0.0, 0.2)
    return net


def relative(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def convert(*argv):
    assert convert_torch.main([str(a) for a in argv]) == 0


def load_eval(path):
    """Our training and inference programs with the converted checkpoint's weights."""
    arrays, meta = train_state.read_checkpoint(path)
    programs = build_train_programs(train_state.config_from_meta(meta),
                                    genotype_from_json(meta["genotype"]))
    runner = Runner(paddle.CPUPlace())
    runner.run_startup(programs.startup)
    runner.set_all(programs.initial_values(np.random.default_rng(0)))
    train_state.init_weights(programs, runner, arrays, meta, path)
    return programs, runner


def train_loss_of_torch(net, x, y, label_smooth=0.0):
    net.train()
    with torch.no_grad():
        logits, aux = net(torch.from_numpy(x))
    y = torch.from_numpy(y)
    return float(TF.cross_entropy(logits, y, label_smoothing=label_smooth)
                 + 0.4 * TF.cross_entropy(aux, y, label_smoothing=label_smooth))


def compare_eval(net, path, x, y, label_smooth=0.0):
    """Inference logits and the training loss (auxiliary head included) of both sides."""
    programs, runner = load_eval(path)
    net.eval()
    with torch.no_grad():
        expected, _ = net(torch.from_numpy(x))
    *_, logits = runner.run(programs.infer, x=x, y=y)
    assert np.abs(expected.numpy()).max() > 0.1  # real logits, not a vanished signal
    assert relative(logits, expected.numpy()) < 1e-4
    feed = dict(x=x, y=y)
    if "drop_mask" in programs.train.feeds:  # drop nothing: PyTorch runs without drop path
        feed["drop_mask"] = np.ones((programs.network.drop_paths, len(y), 1, 1, 1), np.float32)
    loss = float(runner.run(programs.train, **feed)[0])
    assert loss == pytest.approx(train_loss_of_torch(net, x, y, label_smooth), rel=1e-4)


def images(seed, n, size):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3, size, size)).astype(np.float32),
            rng.integers(0, 10, n).astype(np.int64))


# --------------------------------------------------------------------------- the layout

def test_published_parameter_counts_and_keys():
    def count(net, aux=True):
        return sum(p.numel() for k, p in net.named_parameters()
                   if aux or not k.startswith("auxiliary_head."))

    cifar = tm.eval_network("cifar", "DARTS_V2", 36, 10, 20, True)
    imagenet = tm.eval_network("imagenet", G.DARTS_V2, 48, 1000, 14, True)
    supernet = tm.search_network(16, 10, 8)
    assert (count(cifar, False), count(cifar)) == (3_349_342, 3_825_768)
    assert (count(imagenet, False), count(imagenet)) == (4_718_752, 5_979_528)
    assert count(supernet) == 1_930_618  # the alphas are not parameters, as published
    keys = set(cifar.state_dict())
    assert {"stem.0.weight", "stem.1.running_mean", "cells.7.preprocess0.conv_1.weight",
            "cells.0._ops.2.op.1.weight", "cells.0._ops.0.op.7.running_var",
            "auxiliary_head.features.2.weight", "auxiliary_head.features.6.weight",
            "classifier.weight"} <= keys
    keys = set(imagenet.state_dict())
    assert {"stem0.3.weight", "stem1.2.running_var", "cells.0.preprocess0.conv_2.weight",
            "auxiliary_head.features.5.weight"} <= keys
    assert "auxiliary_head.features.6.weight" not in keys  # no BN after the 768 conv
    keys = set(supernet.state_dict())
    assert {"cells.2._ops.0._ops.1.1.running_mean", "cells.2._ops.0._ops.3.conv_1.weight",
            "cells.0._ops.13._ops.7.op.3.running_var"} <= keys
    assert not any("alphas" in k or "_ops.0._ops.0." in k for k in keys)
    assert not any(k.endswith(("1.1.weight", "2.1.weight")) for k in keys)  # pools: BN affine=False
    # and ours: the same network has the same weight count
    assert build_network("cifar", 36, 10, 20, False, G.DARTS_V2).params.size == 3_349_342


# --------------------------------------------------------------------------- evaluation networks

@pytest.fixture(scope="module")
def cifar_checkpoint(tmp_path_factory):
    """C 8, 3 layers (cells 1 and 2 reduce), auxiliary head: torch.save(state_dict), in the
    legacy (pre-1.6, non-zip) format of the original release's files."""
    net = randomize(tm.eval_network("cifar", ALL_OPS, 8, 10, 3, True), 1)
    path = tmp_path_factory.mktemp("cifar") / "model.pt"
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=False)
    return net, str(path)


def test_cifar_checkpoint_gives_the_same_logits_and_training_loss(cifar_checkpoint, tmp_path,
                                                                  capsys):
    net, source = cifar_checkpoint
    out = tmp_path / "converted.npz"
    convert(source, out, "--arch", ALL_OPS_ARCH)
    printed = capsys.readouterr().out
    assert "CIFAR network given genotype (C 8, 3 layers, auxiliary head, 10 classes" in printed
    assert f"--init_from {out}" in printed
    arrays, meta = load_checkpoint(str(out))
    assert meta["config"]["C"] == 8 and meta["config"]["auxiliary"] is True
    assert meta["args"]["dataset"] == "cifar10"
    # the classifier is transposed into [in, out]: its bias and weight land unchanged
    weights = build_network("cifar", 8, 10, 3, True, ALL_OPS).params.unbank(arrays)
    np.testing.assert_array_equal(weights["classifier.weight"],
                                  net.classifier.weight.detach().numpy().T)
    x, y = images(2, 4, 32)
    compare_eval(net, str(out), x, y)


def test_imagenet_checkpoint_with_dataparallel_prefix(tmp_path):
    """train_imagenet.py's {'state_dict': ...} of a DataParallel model; 224x224 images so
    that the published avg pool 7 sees the 7x7 map our global pool averages."""
    net = randomize(tm.eval_network("imagenet", ALL_OPS, 8, 1000, 3, True), 2)
    source = tmp_path / "checkpoint.pth.tar"
    optimizer = torch.optim.SGD(net.parameters(), 0.1, momentum=0.9)
    torch.save({"epoch": 3, "best_acc_top1": 1.5, "optimizer": optimizer.state_dict(),
                "state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, source)
    out = tmp_path / "converted.npz"
    convert(source, out, "--arch", ALL_OPS_ARCH)
    meta = load_checkpoint(str(out))[1]
    assert meta["config"]["kind"] == "imagenet" and meta["config"]["num_classes"] == 1000
    assert meta["converted_from"]["epoch"] == 3
    x, y = images(3, 2, 224)
    compare_eval(net, str(out), x, y, label_smooth=0.1)


# --------------------------------------------------------------------------- search network

def equalize_pool_statistics(net):
    """Training gives the pool BNs of all edges leaving a state the same statistics (same
    input); our fused supernet has one BN there."""
    with torch.no_grad():
        for cell in net.cells:
            for j in range(5):
                edges = [i * (i + 3) // 2 + j for i in range(max(0, j - 1), 4)]
                for pool in (1, 2):
                    first = cell._ops[edges[0]]._ops[pool][1]
                    for e in edges[1:]:
                        bn = cell._ops[e]._ops[pool][1]
                        bn.running_mean.copy_(first.running_mean)
                        bn.running_var.copy_(first.running_var)


@pytest.fixture(scope="module")
def supernet():
    net = randomize(tm.search_network(4, 10, 3), 3).double()
    equalize_pool_statistics(net)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():  # far from uniform, so that a wrong op weighting cannot hide
        for alpha in net.arch_parameters():
            alpha.copy_(torch.randn(alpha.shape, generator=gen, dtype=torch.float64))
    return net


def load_search(path):
    programs = build_search_programs(SearchConfig(C=4, layers=3, num_classes=10, image_size=8,
                                                  dtype="float64"))
    runner = Runner(paddle.CPUPlace(), dtype="float64")
    runner.run_startup(programs.startup)
    runner.set_all(programs.initial_values(np.random.default_rng(0)))
    arrays, shape = search_state.read_initial_state(path)
    assert shape == dict(C=4, layers=3, num_classes=10, in_channels=3)
    search_state.init_state(programs, runner, arrays, path)
    return programs, runner


@pytest.mark.parametrize("alphas_in", ["state_dict", "--alphas"])
@pytest.mark.slow
def test_search_network_gives_the_same_loss_and_alpha_gradient(supernet, alphas_in, tmp_path):
    source, out = tmp_path / "weights.pt", tmp_path / "supernet.npz"
    state = supernet.state_dict()
    if alphas_in == "state_dict":  # later ports register the alphas as parameters
        state.update(zip(ALPHAS, supernet.arch_parameters()))
        torch.save(state, source)
        convert(source, out, "--search")
    else:  # the original keeps them apart
        torch.save(state, source)
        torch.save(supernet.arch_parameters(), tmp_path / "alphas.pt")
        convert(source, out, "--search", "--alphas", tmp_path / "alphas.pt")
    arrays, meta = load_checkpoint(str(out))
    assert meta["format"] == search_state.WEIGHTS_FORMAT and arrays["alphas_normal"].dtype == np.float64
    programs, runner = load_search(str(out))

    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((4, 3, 8, 8)), rng.integers(0, 10, 4).astype(np.int64)
    # inference mode first (a training forward moves PyTorch's running statistics)
    supernet.eval()
    with torch.no_grad():
        expected = TF.cross_entropy(supernet(torch.from_numpy(x)), torch.from_numpy(y))
    loss, _ = runner.run(programs["evaluate"], x=x, y=y)
    assert float(loss) == pytest.approx(float(expected), rel=1e-4)
    # training mode: loss and first-order alpha gradient
    supernet.train()
    for alpha in supernet.arch_parameters():
        alpha.grad = None
    expected = TF.cross_entropy(supernet(torch.from_numpy(x)), torch.from_numpy(y))
    expected.backward()
    loss, _ = runner.run(programs["grad"], x=x, y=y, bn_update=OFF)
    assert float(loss) == pytest.approx(expected.item(), rel=1e-4)
    for name, alpha in zip(ALPHAS, supernet.arch_parameters()):
        assert np.abs(alpha.grad.numpy()).max() > 1e-4
        assert relative(runner.get(programs.gradient_name(name)), alpha.grad.numpy()) < 1e-4


def test_unequal_pool_statistics_are_averaged_with_a_warning(supernet, caplog, monkeypatch):
    # the scripts' logging setup stops propagation at 'darts_paddle': listen on the logger
    logger = logging.getLogger("darts_paddle.convert")
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "handlers", [caplog.handler])
    state = {k: v.numpy().copy() for k, v in supernet.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    state.update({k: a.detach().numpy() for k, a in zip(ALPHAS, supernet.arch_parameters())})
    # the max-pool BNs of the four edges leaving state 0 of cell 0 (edges 0, 2, 5, 9)
    for edge, value in zip((0, 2, 5, 9), (0.0, 2.0, 0.5, 1.5)):
        state[f"cells.0._ops.{edge}._ops.1.1.running_mean"] = np.full(4, value)
    target = convert_torch.Target("search", 4, 3, 10, 3, False, "cifar10")
    arrays, net = convert_torch.convert_state(state, target)
    pool_bn = net.cells[0].sources[0].pool_bn.stats
    np.testing.assert_array_equal(arrays["bn.mean"][pool_bn.offset:pool_bn.offset + 4], 1.0)
    assert "averaged" in caplog.text


# --------------------------------------------------------------------------- mistakes

@pytest.mark.parametrize("argv,message", [
    (["--arch", "DARTS_V2"], "wrong genotype (--arch): cells.0._ops.1 holds sep_conv_5x5 where "
                             "--arch has sep_conv_3x3"),
    (["--layers", "2"], "it has 3 cells, --layers says 2"),
    (["--dataset", "cifar100"], "its classifier has 10 classes, --dataset cifar100 has 100"),
    (["--init_channels", "16"], "its stem gives --init_channels 8, not 16"),
    (["--no-auxiliary"], "it has an auxiliary head: drop --no-auxiliary"),
    (["--dataset", "imagenet"], "it is a CIFAR-type network (stem.*): pass --dataset cifar10"),
    (["--search"], "holds an evaluation network, not a search network"),
    ("no arch", "--arch is needed"),
])
def test_a_checkpoint_that_does_not_fit_is_one_error_line(cifar_checkpoint, argv, message,
                                                          tmp_path, capsys):
    _, source = cifar_checkpoint
    out = tmp_path / "out.npz"
    if argv == "no arch":
        argv = []
    elif "--arch" not in argv and "--search" not in argv:
        argv = ["--arch", ALL_OPS_ARCH, *argv]
    assert convert_torch.main([source, str(out), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()


def test_unreadable_inputs_are_user_errors(cifar_checkpoint, supernet, tmp_path, monkeypatch):
    net, _ = cifar_checkpoint
    out = str(tmp_path / "out.npz")
    with pytest.raises(UserError, match="missing.pt does not exist"):
        convert_torch.convert(convert_torch.parser().parse_args(
            [str(tmp_path / "missing.pt"), out, "--arch", "DARTS_V2"]))
    pickled = tmp_path / "pickled.pt"
    torch.save(net, pickled)  # a whole module: weights_only refuses to unpickle it
    with pytest.raises(UserError, match=r"re-save it with torch.save\(model.state_dict\(\)"):
        torch_checkpoint.read_torch_checkpoint(str(pickled))
    weights = tmp_path / "weights.pt"
    torch.save(supernet.state_dict(), weights)
    with pytest.raises(UserError, match="no alphas_normal / alphas_reduce .* --alphas alphas.pt"):
        convert_torch.convert(convert_torch.parser().parse_args([str(weights), out, "--search"]))
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    with pytest.raises(UserError, match=r"pip install torch==2\.13\.0 .* darts-paddle\[torch\]"):
        torch_checkpoint.read_torch_checkpoint(str(weights))


# --------------------------------------------------------------------------- train.py --init_from

def test_train_init_from_a_converted_checkpoint(cifar_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    net = randomize(tm.eval_network("cifar", G.DARTS_V2, 8, 10, 2, True), 6)
    torch.save(net.state_dict(), "model.pt")
    convert("model.pt", "darts.npz", "--arch", "DARTS_V2")
    converted, _ = load_checkpoint("darts.npz")

    seen = {}
    real_train_epoch = loop.train_epoch

    def recording(epoch, args, programs, runner, *rest, **kwargs):
        names = programs.variable_names()
        seen.update({key: runner.get(name) for key, name in names.items()})
        return real_train_epoch(epoch, args, programs, runner, *rest, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", recording)
    flags = ["--data", cifar_root, "--init_from", "darts.npz", "--epochs", "1", "--layers", "2",
             "--init_channels", "8", "--batch_size", "8", "--auxiliary", "--max_steps", "2",
             "--save", "init"]
    assert cli.run_main(train_script.main, flags) == 0
    assert "weights and BN statistics from darts.npz" in capsys.readouterr().out
    for key, value in converted.items():  # weights and statistics, auxiliary head too
        np.testing.assert_array_equal(seen[key], value, err_msg=key)
    velocity = [k for k in seen if k.startswith("velocity/")]
    assert velocity and all(not seen[k].any() for k in velocity)  # a fresh optimizer
    (run,) = [d for d in os.listdir(".") if d.startswith("eval-init-")]
    meta = load_checkpoint(os.path.join(run, "checkpoint.npz"))[1]
    assert meta["epoch"] == 1 and meta["args"]["init_from"] == "darts.npz"

    # --eval_only reads the converted file as it is
    args = train_script.flags.train_parser().parse_args(
        ["--eval_only", "--model_path", "darts.npz", "--data", cifar_root, "--batch_size", "8"])
    loss, top1, _ = loop.main(args, "cifar")
    assert np.isfinite(loss) and 0 <= top1 <= 1


@pytest.mark.parametrize("extra,message", [
    (["--layers", "3"], "--init_from darts.npz does not fit this run: --layers 2 (not 3)"),
    (["--layers", "2", "--arch", "DARTS_V1"], "--arch DARTS_V1 is not the genotype of"),
    (["--layers", "2", "--resume", "darts.npz"], "--init_from starts a new run"),
])
def test_init_from_mistakes_are_one_error_line(extra, message, cifar_root, tmp_path, monkeypatch,
                                               capsys):
    monkeypatch.chdir(tmp_path)
    torch.save(tm.eval_network("cifar", G.DARTS_V2, 8, 10, 2, False).state_dict(), "model.pt")
    convert("model.pt", "darts.npz", "--arch", "DARTS_V2")
    capsys.readouterr()
    argv = ["--data", cifar_root, "--init_from", "darts.npz", "--init_channels", "8", *extra]
    assert cli.run_main(train_script.main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    # a converted file is no interrupted run
    assert cli.run_main(train_script.main, ["--data", cifar_root, "--resume", "darts.npz"]) == 2
    assert "train from it with --init_from darts.npz" in capsys.readouterr().err


# --------------------------------------------------------------------------- train_search.py --init_from

@pytest.mark.slow
def test_train_search_init_from_a_converted_supernet(tmp_path, monkeypatch, capsys):
    import train_search

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(7)
    fx.write_fashion_mnist(str(tmp_path), rng.integers(0, 256, (16, 28, 28), dtype=np.uint8),
                           (np.arange(16) % 10).astype(np.uint8),
                           rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
                           (np.arange(4) % 10).astype(np.uint8))
    net = randomize(tm.search_network(2, 10, 3, in_channels=1), 8)
    torch.save({**net.state_dict(), **dict(zip(ALPHAS, net.arch_parameters()))}, "weights.pt")
    convert("weights.pt", "supernet.npz", "--search")  # 1 input channel: Fashion-MNIST
    converted, _ = load_checkpoint("supernet.npz")

    seen = {}
    real_train_epoch = search_loop.train_epoch

    def recording(epoch, args, programs, architect, *rest, **kwargs):
        names = programs.state_names()
        seen.update({k: architect.runner.get(names[k]) for k in converted})
        return real_train_epoch(epoch, args, programs, architect, *rest, **kwargs)

    monkeypatch.setattr(search_loop, "train_epoch", recording)
    flags = ["--dataset", "fashion_mnist", "--data", str(tmp_path), "--layers", "3",
             "--init_channels", "2", "--batch_size", "4", "--epochs", "1", "--max_steps", "1",
             "--init_from", "supernet.npz"]
    assert cli.run_main(train_search.main, flags) == 0
    assert "weights, BN statistics and alphas from supernet.npz" in capsys.readouterr().out
    assert set(seen) == set(converted)
    for key, value in converted.items():
        np.testing.assert_array_equal(seen[key], value, err_msg=key)
    # a supernet of another shape is refused with the flags to pass
    assert cli.run_main(train_search.main, flags[:4] + ["--layers", "4"] + flags[6:]) == 2
    assert "holds a supernet with --init_channels 2 --layers 3" in capsys.readouterr().err
