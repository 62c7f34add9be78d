"""Data-parallel training: launch environment, batch sharding, the collective programs, and
train.py under `python -m paddle.distributed.launch --nproc_per_node 2` on the CPU (gloo):
the second process starts from scrambled weights, yet after two steps the weights equal SGD
from rank 0's start on the average of the two halves' gradients computed in this process
(so rank 0's state was broadcast and the gradients averaged), and an interrupted 2-process
run resumes bit-identically."""

import glob
import os

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

paddle = import_paddle()

import genotypes as G  # noqa: E402
from darts_paddle import distributed  # noqa: E402
from darts_paddle.train import loop  # noqa: E402
from darts_paddle.train import state as train_state  # noqa: E402
from darts_paddle.train.flags import train_parser  # noqa: E402
from darts_paddle.storage.checkpoint import load_checkpoint  # noqa: E402
from darts_paddle.data import ArrayDataset, BatchLoader, build_transform, get_spec  # noqa: E402
from darts_paddle.distributed import World  # noqa: E402
from darts_paddle.errors import UserError  # noqa: E402
from darts_paddle.nets.networks import DropPath, build_network, drop_path_masks  # noqa: E402
from darts_paddle.nets.ops import Context  # noqa: E402
from darts_paddle.nets.params import SharedVars  # noqa: E402
from darts_paddle.runner import Prog  # noqa: E402
from darts_paddle.runner import Runner  # noqa: E402
from darts_paddle.train.programs import TrainConfig, build_train_programs, criterion  # noqa: E402

from tests.helpers import data_fixtures as fx  # noqa: E402
from tests.helpers import launching  # noqa: E402
from tests.helpers.launching import REPO, launched  # noqa: E402

CIFAR10 = get_spec("cifar10")

# what paddle.distributed.launch --nproc_per_node 2 sets on a CPU build (second process)
LAUNCH_ENV = {"PADDLE_TRAINERS_NUM": "2", "PADDLE_TRAINER_ID": "1", "PADDLE_LOCAL_SIZE": "2",
              "PADDLE_MASTER": "127.0.0.1:52486", "PADDLE_DISTRI_BACKEND": "gloo",
              "PADDLE_TRAINER_ENDPOINTS": "127.0.0.1:52487,127.0.0.1:52488"}


# --------------------------------------------------------------------------- environment

def test_world_from_launch_environment():
    assert distributed.world_from_env({}) == World() and not World().distributed
    assert distributed.world_from_env({"PADDLE_TRAINERS_NUM": "1"}) == World()
    world = distributed.world_from_env(LAUNCH_ENV)
    assert world == World(rank=1, size=2, local_size=2, gpu=None)
    assert world.distributed and not world.is_main
    gpu = distributed.world_from_env({**LAUNCH_ENV, "FLAGS_selected_gpus": "3"})
    assert gpu.gpu == 3


@pytest.mark.parametrize("env,message", [
    ({"PADDLE_TRAINERS_NUM": "2"}, "PADDLE_TRAINER_ID=None"),
    ({**LAUNCH_ENV, "PADDLE_TRAINER_ID": "2"}, "PADDLE_TRAINER_ID=2"),
    ({**LAUNCH_ENV, "PADDLE_MASTER": "", "PADDLE_TRAINER_ENDPOINTS": ""}, "PADDLE_MASTER"),
    ({**LAUNCH_ENV, "PADDLE_TRAINERS_NUM": "two"}, "not an integer"),
])
def test_inconsistent_environment_names_the_launcher(env, message):
    with pytest.raises(UserError, match=message) as info:
        distributed.world_from_env(env)
    assert "paddle.distributed.launch" in str(info.value)


def test_batch_size_must_split_evenly():
    distributed.check_batch_size(8, World(0, 2))
    with pytest.raises(UserError, match="--batch_size 10 .* 4 processes: pass a multiple of 4"):
        distributed.check_batch_size(10, World(0, 4))


def test_more_processes_than_gpus_is_refused_with_the_fix():
    assert distributed.choose_gpu(World(0, 2, 2, None), 0) is None      # CPU build: gloo
    assert distributed.choose_gpu(World(0, 2, 2, 1), 0) is None         # no device: gloo
    assert distributed.choose_gpu(World(1, 2, 2, 1), 2) == 1
    with pytest.raises(UserError, match="4 processes .* only 2 GPU.*--nproc_per_node 2"):
        distributed.choose_gpu(World(3, 4, 4, 3), 2)
    with pytest.raises(UserError, match="given GPU 5 .* --gpus"):
        distributed.choose_gpu(World(1, 2, 2, 5), 4)


# --------------------------------------------------------------------------- data

def _indexed_dataset(n):
    """Labels equal the sample index, so batches reveal which samples they hold."""
    return ArrayDataset(CIFAR10, True, fx.random_uint8((n, 32, 32, 3), 5),
                        np.arange(n, dtype=np.int64))


@pytest.mark.parametrize("n,steps", [(22, 4), (20, 3)])
def test_ranks_split_every_batch_of_the_single_process(n, steps):
    """3 processes, global batch 6: together they see the single process's batches, with
    the same augmentation; the last batch (4 or 2 images) is cut to a multiple of 3."""
    ds, transform = _indexed_dataset(n), build_transform(CIFAR10, True, cutout_length=8)
    single = list(BatchLoader(ds, None, 6, transform, seed=3, num_workers=0).epoch(1))
    ranks = [list(BatchLoader(ds, None, 6, transform, seed=3, num_workers=0, rank=r,
                              world_size=3).epoch(1)) for r in range(3)]
    assert all(len(r) == steps for r in ranks)
    for step in range(steps):
        parts = [r[step] for r in ranks]
        labels = np.concatenate([p[1] for p in parts])
        images = np.concatenate([p[0] for p in parts])
        assert len({len(p[1]) for p in parts}) == 1  # equal parts
        whole_x, whole_y = single[step]
        m = len(labels)
        assert m == len(whole_y) - len(whole_y) % 3
        np.testing.assert_array_equal(labels, whole_y[:m])
        np.testing.assert_array_equal(images, whole_x[:m])
    if n == 20:  # the single process's last batch had 2 images: fewer than 3 processes
        assert len(single) == 4 and len(single[-1][1]) == 2


# --------------------------------------------------------------------------- programs

def test_train_program_averages_gradients_and_metrics_over_ranks():
    cfg = TrainConfig(C=4, layers=2, image_size=16)
    single = build_train_programs(cfg, G.DARTS_V2)
    assert distributed.collective_ops(single.train) == []
    dp = build_train_programs(cfg, G.DARTS_V2, world_size=2)
    banks = len(dp.network.params.banks)
    # one all-reduce per weight bank, and one for each of loss, top-1, top-5
    assert distributed.collective_ops(dp.train) == ["pd_op.all_reduce_"] * (banks + 3)
    assert distributed.collective_ops(dp.infer) == []
    runner = Runner(paddle.CPUPlace())
    runner.run_startup(dp.startup)
    names = dp.variable_names().values()
    sync = distributed.build_broadcast_program({n: runner.get(n) for n in names})
    assert distributed.collective_ops(sync) == ["pd_op.broadcast_"] * len(names)


# --------------------------------------------------------------------------- train.py launched

def launch(cwd, log_dir, argv, script=os.path.join(REPO, "train.py")):
    return launching.launch(cwd, log_dir, argv, script)


def flags(root, save):
    # grad_clip 16.5: the first step's averaged gradient (norm 16.0) is not clipped though
    # each half's is (16.8, 23.3), the second step's (17.5) is; drop path acts in epoch 2
    return ["--data", root, "--save", save, "--arch", "DARTS_V2", "--epochs", "2",
            "--max_steps", "1", "--layers", "2", "--init_channels", "4", "--batch_size", "8",
            "--auxiliary", "--drop_path_prob", "0.3", "--cutout", "--grad_clip", "16.5",
            "--report_freq", "1"]


# train.py with the other process's initial state scrambled (the broadcast must undo it),
# optionally interrupted at the start of epoch CUT_AT (as Ctrl-C would)
WRAPPER = """
import os
import numpy as np
import train
from darts_paddle import cli
from darts_paddle.train import loop

real_build, real_epoch = loop.build, loop.train_epoch

def build(*args, **kwargs):
    programs, runner = real_build(*args, **kwargs)
    if os.environ["PADDLE_TRAINER_ID"] != "0":
        rng = np.random.default_rng(99)
        for name in programs.variable_names().values():
            runner.set(name, rng.standard_normal(runner.get(name).shape))
    return programs, runner

def train_epoch(epoch, *args, **kwargs):
    if epoch == {cut_at}:
        raise KeyboardInterrupt
    return real_epoch(epoch, *args, **kwargs)

loop.build, loop.train_epoch = build, train_epoch
sys.exit(cli.run_main(train.main))
"""


def wrapper(directory, cut_at=None):
    return launching.wrapper(directory, "wrapped_train.py", WRAPPER.format(cut_at=cut_at))


@pytest.fixture(scope="module")
def full_run(cifar_root, tmp_path_factory):
    """2 epochs of one step each in 2 launched CPU processes."""
    cwd = tmp_path_factory.mktemp("full")
    done = launch(cwd, cwd / "logs", flags(cifar_root, "full"), wrapper(cwd))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run,) = glob.glob(str(cwd / "eval-*"))  # one run directory: rank 0's
    return cwd, run, done


@launched
@pytest.mark.distributed
@pytest.mark.subprocess
@pytest.mark.slow
def test_two_processes_log_once_and_rank_zero_writes(full_run):
    cwd, run, done = full_run
    assert sorted(os.listdir(run)) == ["best.npz", "checkpoint.npz", "log.txt"]
    with open(os.path.join(run, "log.txt")) as f:
        log = f.read()
    assert "data parallel: 2 processes" in log and "4 images each per step" in log
    assert log.count("epoch 2 lr") == 1 and log.count("valid_acc") == 2
    with open(cwd / "logs" / "workerlog.1") as f:
        assert "epoch 1 lr" not in f.read()  # the other process logs no progress


def reference_gradients(cfg, genotype):
    """A separately built program: the training loss's gradients w.r.t. the weight banks,
    with no optimizer and nothing reduced."""
    net = build_network(cfg.kind, cfg.C, cfg.num_classes, cfg.layers, cfg.auxiliary, genotype)
    prog, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(prog, startup):
        x = paddle.static.data("x", [-1, 3, 32, 32], "float32")
        y = paddle.unsqueeze(paddle.static.data("y", [-1], "int64"), 1)
        masks = paddle.static.data("drop_mask", [net.drop_paths, -1, 1, 1, 1], "float32")
        banks = net.materialize(SharedVars(), training=True)
        logits, aux = net(x, Context(training=True), DropPath(masks))
        loss = criterion(logits, y) + cfg.auxiliary_weight * criterion(aux, y)
        grads = paddle.static.gradients([loss], banks)
    runner = Runner(paddle.CPUPlace())
    runner.run_startup(startup)
    runner.set_all(net.initial_values(np.random.default_rng(0)))
    names = [b.name for b in banks]

    def gradients(w, x, y, masks):
        runner.set_all(w)
        return dict(zip(names, runner.run(Prog(prog, ["x", "y", "drop_mask"], grads), x=x, y=y,
                                          drop_mask=masks)))
    return net, names, gradients


def sgd_step(w, v, g, lr, cfg):
    """Momentum SGD with L2 decay after clipping g to a global norm (float64)."""
    norm = np.sqrt(sum((g[b].astype(np.float64) ** 2).sum() for b in g))
    scale = cfg.grad_clip / max(norm, cfg.grad_clip)
    v = {b: cfg.momentum * v[b] + scale * g[b] + cfg.weight_decay * w[b] for b in w}
    return {b: w[b] - lr * v[b] for b in w}, v, norm


@launched
@pytest.mark.distributed
@pytest.mark.subprocess
@pytest.mark.slow
def test_two_processes_train_on_the_average_of_their_gradients(full_run, cifar_root):
    _, run, _ = full_run
    arrays, meta = load_checkpoint(os.path.join(run, "checkpoint.npz"))
    cfg = train_state.config_from_meta(meta)
    net, banks, gradients = reference_gradients(cfg, G.DARTS_V2)
    args = train_parser().parse_args(flags(cifar_root, "ref"))
    loader, _ = loop.make_loaders(args, CIFAR10)  # one process, global batches
    w = {b: v.astype(np.float64) for b, v in net.initial_values(np.random.default_rng(0)).items()
         if b in banks}
    v = {b: np.zeros_like(w[b]) for b in banks}
    own, norms = None, []
    for epoch, lr in ((0, 0.025), (1, 0.0125)):  # cosine over 2 epochs
        x, y = next(iter(loader.epoch(epoch)))
        masks = drop_path_masks(loop.drop_rng(args.seed, epoch, 0), net.drop_paths, 8,
                                loop.drop_prob_at(cfg, epoch))
        halves = [gradients({b: w[b].astype(np.float32) for b in banks}, x[s], y[s],
                            masks[:, s]) for s in (slice(0, 4), slice(4, 8))]
        mean = {b: (halves[0][b].astype(np.float64) + halves[1][b]) / 2 for b in banks}
        if own is None:  # what rank 0 would do alone on its half
            own = sgd_step(w, v, {b: halves[0][b].astype(np.float64) for b in banks}, lr,
                           cfg)[0]
        w, v, norm = sgd_step(w, v, mean, lr, cfg)
        norms.append(norm)
    # unclipped first step: a sum instead of a mean, or clipping each half first, would differ
    assert norms[0] < cfg.grad_clip < norms[1]
    for b in banks:  # float32 in the processes, float64 here
        np.testing.assert_allclose(arrays[b], w[b], rtol=1e-4, atol=2e-6, err_msg=b)
        np.testing.assert_allclose(arrays["velocity/" + b], v[b], rtol=1e-4, atol=2e-5,
                                   err_msg=b)
    # the test can tell: one process's own gradient would have moved the weights elsewhere
    assert max(np.abs(own[b] - w[b]).max() for b in banks) > 1e-4


@launched
@pytest.mark.distributed
@pytest.mark.subprocess
@pytest.mark.slow
def test_interrupted_two_process_run_resumes_bit_identically(full_run, cifar_root, tmp_path):
    _, full, _ = full_run
    cut = launch(tmp_path, tmp_path / "logs_cut", flags(cifar_root, "cut"),
                 wrapper(tmp_path, cut_at=1))
    assert cut.returncode != 0  # both processes stopped at the start of epoch 2
    (run,) = glob.glob(str(tmp_path / "eval-cut-*"))
    assert load_checkpoint(os.path.join(run, "checkpoint.npz"))[1]["epoch"] == 1
    resumed = launch(tmp_path, tmp_path / "logs_resume", ["--resume", run, "--data", cifar_root])
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    a, meta_a = load_checkpoint(os.path.join(full, "checkpoint.npz"))
    b, meta_b = load_checkpoint(os.path.join(run, "checkpoint.npz"))
    assert set(a) == set(b) and meta_a["epoch"] == meta_b["epoch"] == 2
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert meta_a["test_acc"] == meta_b["test_acc"]


@launched
@pytest.mark.distributed
@pytest.mark.subprocess
@pytest.mark.slow
def test_batch_not_divisible_by_processes_is_one_error_line(cifar_root, tmp_path):
    argv = flags(cifar_root, "odd")
    argv[argv.index("--batch_size") + 1] = "7"
    done = launch(tmp_path, tmp_path / "logs", argv)
    assert done.returncode != 0
    with open(tmp_path / "logs" / "workerlog.0") as f:
        err = [line for line in f if line.startswith("error: ")]
    assert err == ["error: --batch_size 7 cannot be split evenly over 2 processes: pass a "
                   "multiple of 2 (--batch_size is the global batch; every process trains on "
                   "batch_size / 2 of it)\n"]
