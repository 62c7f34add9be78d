"""Evaluation training: optimizer, schedules, loss, checkpoints, and train.py end to end
(resume bit-identical, --eval_only, export, one-line errors) on a tiny fake CIFAR-10."""

import glob
import os
import signal

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

paddle = import_paddle()

import genotypes as G  # noqa: E402
from darts_paddle import cli  # noqa: E402
from darts_paddle.train import loop  # noqa: E402
from darts_paddle.train import state as train_state  # noqa: E402
from darts_paddle.storage.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from darts_paddle.errors import UserError  # noqa: E402
from darts_paddle.nets.networks import drop_path_masks  # noqa: E402
from darts_paddle.runner import Prog  # noqa: E402
from darts_paddle.runner import Runner  # noqa: E402
from darts_paddle.train.programs import (TrainConfig, build_train_programs,  # noqa: E402
                                         criterion)

import train as train_script  # noqa: E402
from tests.helpers.stopping import sigterm_during  # noqa: E402


def make(cfg, genotype=G.DARTS_V2):
    programs = build_train_programs(cfg, genotype)
    runner = Runner(paddle.CPUPlace())
    runner.run_startup(programs.startup)
    runner.set_all(programs.initial_values(np.random.default_rng(0)))
    return programs, runner


def batch(seed, n=8, size=16):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, size, size)).astype(np.float32), rng.integers(0, 10, n)


def test_training_lowers_the_loss_with_drop_path():
    cfg = TrainConfig(C=8, layers=2, image_size=16, epochs=4, drop_path_prob=0.2)
    programs, runner = make(cfg)
    assert programs.train.feeds == ["x", "y", "drop_mask"]
    x, y = batch(1)
    losses = []
    for step in range(12):
        masks = drop_path_masks(np.random.default_rng(step), programs.network.drop_paths, 8, 0.1)
        losses.append(float(runner.run(programs.train, x=x, y=y, drop_mask=masks)[0]))
    # batch-8 BN makes single steps noisy: compare the last three with the first
    assert np.mean(losses[-3:]) < 0.5 * losses[0]
    # inference mode uses the stored BN statistics, and gives finite logits of the right shape
    loss, top1, top5, logits = runner.run(programs.infer, x=x, y=y)
    assert logits.shape == (8, 10) and np.isfinite(logits).all()
    assert 0 <= top1 <= top5 <= 1


def test_momentum_sgd_with_decay_clipping_and_scheduled_lr():
    cfg = TrainConfig(C=8, layers=2, image_size=16, epochs=4, grad_clip=0.1)  # always clipped
    programs, runner = make(cfg)
    banks = list(programs.network.params.banks)
    velocity = {b: programs.optimizer_state["velocity/" + b] for b in banks}

    def state():
        return ({b: runner.get(b) for b in banks}, {b: runner.get(velocity[b]) for b in banks})

    def step(seed):
        x, y = batch(seed)
        runner.run(programs.train, x=x, y=y)

    w0, _ = state()
    step(2)
    w1, v1 = state()
    step(3)
    w2, v2 = state()
    programs.lr_scheduler.step()  # epoch 1: the program must pick up the new LR by itself
    lr1 = programs.lr_scheduler()
    assert lr1 == pytest.approx(0.5 * 0.025 * (1 + np.cos(np.pi / 4)), rel=1e-12)
    step(4)
    w3, v3 = state()
    lam, mu = cfg.weight_decay, cfg.momentum
    # the velocity, minus momentum and decay, is the clipped gradient: global norm = clip
    for v_new, v_old, w_old in ((v1, None, w0), (v2, v1, w1), (v3, v2, w2)):
        grad = {b: v_new[b] - lam * w_old[b] - (mu * v_old[b] if v_old else 0.0) for b in banks}
        norm = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grad.values()))
        assert norm == pytest.approx(cfg.grad_clip, rel=1e-4)
    # w <- w - lr * v, with the scheduled lr (float32 arithmetic: one ulp of w)
    for w_new, w_old, v, lr in ((w1, w0, v1, 0.025), (w2, w1, v2, 0.025), (w3, w2, v3, lr1)):
        for b in banks:
            np.testing.assert_allclose(w_new[b], w_old[b] - np.float32(lr) * v[b], rtol=0,
                                       atol=2e-7)


def test_learning_rate_schedules():
    cosine = build_train_programs(TrainConfig(C=8, layers=2, image_size=16, epochs=10),
                                  G.DARTS_V2, train=False).lr_scheduler
    step = build_train_programs(TrainConfig(C=8, layers=2, image_size=16, schedule="step",
                                            learning_rate=0.1, decay_period=2, gamma=0.5),
                                G.DARTS_V2, train=False).lr_scheduler
    for epoch in range(11):
        assert cosine() == pytest.approx(0.0125 * (1 + np.cos(np.pi * epoch / 10)), abs=1e-12)
        assert step() == pytest.approx(0.1 * 0.5 ** (epoch // 2), rel=1e-12)
        cosine.step()
        step.step()


def test_label_smoothed_cross_entropy_equals_numpy():
    rng = np.random.default_rng(6)
    logits, labels = rng.standard_normal((4, 5)), np.array([0, 3, 4, 1])
    main = paddle.static.Program()
    with paddle.static.program_guard(main, paddle.static.Program()):
        x = paddle.static.data("x", [-1, 5], "float64")
        y = paddle.static.data("y", [-1], "int64")
        losses = [criterion(x, paddle.unsqueeze(y, 1), eps) for eps in (0.0, 0.1)]
    got = Runner(paddle.CPUPlace(), "float64").run(Prog(main, ["x", "y"], losses), x=logits,
                                                   y=labels)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    for value, eps in zip(got, (0.0, 0.1)):
        target = (1 - eps) * np.eye(5)[labels] + eps / 5
        # eps enters as a float32 attribute of Paddle's scale op: ~1e-8 relative
        assert float(value) == pytest.approx(-(target * log_p).sum(1).mean(), rel=1e-6)


# --------------------------------------------------------------------------- checkpoints

def test_checkpoint_round_trip_is_atomic_and_exact(tmp_path):
    path = str(tmp_path / "ck.npz")
    arrays = {"a.b": np.arange(6, dtype=np.float32).reshape(2, 3), "v": np.array([1e-30])}
    save_checkpoint(path, arrays, {"epoch": 3, "acc": 0.1 + 0.2})
    got, meta = load_checkpoint(path)
    assert meta == {"epoch": 3, "acc": 0.1 + 0.2}
    assert set(got) == set(arrays)
    for k in arrays:
        assert got[k].dtype == arrays[k].dtype and np.array_equal(got[k], arrays[k])
    assert os.listdir(tmp_path) == ["ck.npz"]  # no temporary file left behind


def test_unreadable_checkpoints_are_user_errors_naming_the_file(tmp_path):
    path = str(tmp_path / "ck.npz")
    save_checkpoint(path, {"w": np.ones(1000, np.float32)}, {"epoch": 1})
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(raw[:len(raw) // 2])
    with pytest.raises(UserError, match="ck.npz.*unreadable"):
        load_checkpoint(path)
    with open(path, "w") as f:
        f.write("not a checkpoint")
    with pytest.raises(UserError, match="ck.npz"):
        load_checkpoint(path)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(str(tmp_path / "missing.npz"))


# --------------------------------------------------------------------------- train.py

def flags(root, save, *extra):
    # 2 layers of C 8 on 32x32: both cells reduce, the auxiliary head sees 8x8 maps
    return ["--data", root, "--save", save, "--arch", "DARTS_V2", "--epochs", "2",
            "--layers", "2", "--init_channels", "8", "--batch_size", "8", "--auxiliary",
            "--drop_path_prob", "0.3", "--cutout", "--report_freq", "1", *extra]


def run_dir(save):
    (path,) = glob.glob(f"eval-{save}-*")
    return path


@pytest.mark.slow
def test_train_resume_is_bit_identical_and_eval_only_reproduces(cifar_root, tmp_path,
                                                                monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.run_main(train_script.main, flags(cifar_root, "full")) == 0
    out = capsys.readouterr().out
    assert "param size = " in out and "multiply-adds = " in out
    assert "done: best test accuracy" in out
    full = run_dir("full")

    # the same run interrupted during its second epoch, then resumed
    real_train_epoch = loop.train_epoch

    def interrupted(epoch, *args, **kwargs):
        if epoch == 1:
            raise KeyboardInterrupt
        return real_train_epoch(epoch, *args, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", interrupted)
    assert cli.run_main(train_script.main, flags(cifar_root, "cut")) == 130
    cut = run_dir("cut")
    assert load_checkpoint(os.path.join(cut, "checkpoint.npz"))[1]["epoch"] == 1
    monkeypatch.setattr(loop, "train_epoch", real_train_epoch)
    assert cli.run_main(train_script.main, ["--resume", cut, "--data", cifar_root]) == 0
    assert "resumed from" in capsys.readouterr().out

    a, meta_a = load_checkpoint(os.path.join(full, "checkpoint.npz"))
    b, meta_b = load_checkpoint(os.path.join(cut, "checkpoint.npz"))
    assert set(a) == set(b) and any(k.startswith("velocity/") for k in a)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert meta_a == meta_b and meta_a["epoch"] == 2
    initial = build_train_programs(train_state.config_from_meta(meta_a), G.DARTS_V2,
                                   train=False).initial_values(np.random.default_rng(0))
    assert not np.array_equal(a["net.vector"], initial["net.vector"])  # it did train

    # --eval_only on the best checkpoint reproduces its test accuracy, and exports
    best = os.path.join(full, "best.npz")
    _, meta_best = load_checkpoint(best)
    args = train_script.flags.train_parser().parse_args(
        ["--eval_only", "--model_path", best, "--data", cifar_root, "--batch_size", "8",
         "--export"])
    _, top1, _ = loop.main(args, "cifar")
    assert top1 == meta_best["test_acc"]
    assert os.path.isfile(os.path.join(full, "inference", "model.json")) or \
        glob.glob(os.path.join(full, "inference", "model.*"))


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_and_resume_alone_continues_bit_identically(
        cifar_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.run_main(train_script.main, flags(cifar_root, "full")) == 0
    full = run_dir("full")
    # SIGTERM during step 2 of epoch 2 (5 steps an epoch): that step finishes, the run
    # saves where it is and exits with 128 + 15
    real_drop_rng = sigterm_during(monkeypatch, 1, 2)
    assert cli.run_main(train_script.main, flags(cifar_root, "cut")) == 128 + signal.SIGTERM
    cut = run_dir("cut")
    meta = load_checkpoint(os.path.join(cut, "checkpoint.npz"))[1]
    assert (meta["epoch"], meta["step"]) == (1, 3)
    monkeypatch.setattr(loop, "drop_rng", real_drop_rng)
    capsys.readouterr()
    assert cli.run_main(train_script.main, ["--resume", cut]) == 0  # the run's own flags
    (a, meta_a), (b, meta_b) = (load_checkpoint(os.path.join(d, "checkpoint.npz"))
                                for d in (full, cut))
    assert meta_a == meta_b and meta_a["epoch"] == 2
    for key in a:
        assert np.array_equal(a[key], b[key]), key

    # the one rule of --resume: finished runs say so, contradicting flags are refused by
    # name, more epochs are allowed and logged, and the log shows the values that run
    assert cli.run_main(train_script.main, ["--resume", cut]) == 2
    assert "finished all 2 epochs" in capsys.readouterr().err
    assert cli.run_main(train_script.main, ["--resume", cut, "--epochs", "3",
                                            "--batch_size", "4"]) == 2
    assert "--batch_size 4 (checkpoint: 8)" in capsys.readouterr().err
    assert cli.run_main(train_script.main, ["--resume", cut, "--epochs", "3"]) == 0
    log = open(os.path.join(cut, "log.txt")).read()
    assert "changed on resume: --epochs 3 (the run's: 2)" in log
    args_line = [line for line in log.splitlines() if "args = " in line][-1]
    assert "'epochs': 3" in args_line and "'batch_size': 8" in args_line
    assert load_checkpoint(os.path.join(cut, "checkpoint.npz"))[1]["epoch"] == 3


@pytest.mark.parametrize("argv,message,run_dir_made", [
    (["--arch", "DARTS_V9"], "unknown genotype 'DARTS_V9'", True),
    (["--dataset", "cifar100"], "CIFAR-100 not found", True),
    (["--eval_only", "--model_path", "nothing.npz"], "checkpoint nothing.npz does not exist",
     False),
    (["--resume", "no-such-run"], "cannot resume", False),
])
def test_user_mistakes_are_one_error_line(argv, message, run_dir_made, cifar_root, tmp_path,
                                          monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("darts_paddle.data.download.urllib.request.urlopen",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    assert cli.run_main(train_script.main, ["--data", cifar_root, *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert "Traceback" not in err[0]
    # the run directory of a failed start says why in its log
    logs = [open(log).read().splitlines()[-1] for log in glob.glob("eval-*/log.txt")]
    assert [line.endswith(err[0]) for line in logs] == ([True] if run_dir_made else [])


def test_resume_clears_stale_temporaries_and_logs_its_error(cifar_root, tmp_path, capsys):
    run = tmp_path / "eval-x"
    save_checkpoint(str(run / "checkpoint.npz"), {"w": np.zeros(1)}, {"format": "other"})
    for stale in "checkpoint.npz.a1b2c3d4.tmp", "best.npz.x_y_z_ab.tmp":
        (run / stale).write_bytes(b"half")
    assert cli.run_main(train_script.main, ["--resume", str(run), "--data", cifar_root]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: checkpoint") and "not an evaluation-training checkpoint" in err
    assert sorted(os.listdir(run)) == ["checkpoint.npz", "log.txt"]
    assert (run / "log.txt").read_text().splitlines()[-1].endswith(err)


def test_corrupt_checkpoint_for_eval_only(tmp_path, capsys):
    path = tmp_path / "best.npz"
    path.write_bytes(b"PK\x03\x04 truncated")
    assert cli.run_main(train_script.main, ["--eval_only", "--model_path", str(path)]) == 2
    err = capsys.readouterr().err
    assert "error: checkpoint" in err and "best.npz" in err
