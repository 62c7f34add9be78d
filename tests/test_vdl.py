"""--visualdl: what train_search.py and train.py write to SAVE_DIR/vdl, read back with
VisualDL's LogReader and checked against the run's history.json, log.txt and checkpoint;
a resumed run appends to the same log file and continues the steps.  And the console of a
search: compact lines there, the op weight matrices in log.txt only."""

import glob
import json
import logging
import os
import re
import signal
import sys

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

import_paddle()

from darts_paddle import cli  # noqa: E402
from darts_paddle.run import logs, vdl  # noqa: E402
from darts_paddle.train import loop  # noqa: E402
from darts_paddle.storage.checkpoint import load_checkpoint  # noqa: E402

import train as train_script  # noqa: E402
import train_search  # noqa: E402
from tests.helpers.stopping import sigterm_during  # noqa: E402


def read_board(run):
    """{tag: [(step, value)]} of the scalars and {tag: [step]} of the images in the run's
    one VisualDL log file."""
    visualdl = pytest.importorskip("visualdl")
    (path,) = glob.glob(os.path.join(run, "vdl", "*"))
    reader = visualdl.LogReader(file_path=path)
    tags = reader.get_tags()
    scalars = {t: [(r.id, r.value) for r in reader.get_data("scalar", t)] for t in tags["scalar"]}
    images = {t: [r.id for r in reader.get_data("image", t)] for t in tags.get("image", [])}
    return scalars, images


def per_epoch(scalars, tag):
    steps, values = zip(*scalars[tag])
    return list(steps), np.array(values)


def search_flags(root, save, *extra):
    return ["--dataset", "fashion_mnist", "--data", root, "--save", save, "--layers", "3",
            "--init_channels", "2", "--batch_size", "4", "--epochs", "2", "--max_steps", "3",
            "--report_freq", "1", "--eigen_iterations", "1", "--visualdl", *extra]


@pytest.mark.slow
def test_search_board_matches_history(fashion_root, tmp_path, monkeypatch, capsys):
    pytest.importorskip("visualdl")
    monkeypatch.chdir(tmp_path)
    assert cli.run_main(train_search.main, search_flags(fashion_root, "s")) == 0
    (run,) = glob.glob("search-s-*")
    out = capsys.readouterr().out

    history = json.load(open(os.path.join(run, "history.json")))
    scalars, images = read_board(run)
    expected = {"loss/train": "train_loss", "loss/valid": "valid_loss",
                "accuracy/train": "train_acc", "accuracy/valid": "valid_acc",
                "collapse/hessian_eigenvalue": "hessian_eigenvalue"}
    for tag, key in expected.items():
        steps, values = per_epoch(scalars, tag)
        assert steps == [1, 2], tag
        np.testing.assert_allclose(values, [r[key] for r in history], rtol=1e-6, err_msg=tag)
    for key in "skip_connect", "parameter_free", "alpha_entropy":
        for cell in "normal", "reduce":
            steps, values = per_epoch(scalars, f"{key}/{cell}")
            assert steps == [1, 2]
            np.testing.assert_allclose(values, [r[key][cell] for r in history], rtol=1e-6)
    # the schedules from the flags: cosine from 0.025 to 0.001 over 2 epochs, Adam at 3e-4
    np.testing.assert_allclose(per_epoch(scalars, "lr/weights")[1], [0.025, 0.013], rtol=1e-6)
    np.testing.assert_allclose(per_epoch(scalars, "lr/arch")[1], [3e-4, 3e-4], rtol=1e-6)
    # every step, counted over the run (3 an epoch); each epoch's step losses average to
    # its train_loss
    steps, losses = per_epoch(scalars, "train_step/loss")
    assert steps == list(range(6))
    np.testing.assert_allclose(losses.reshape(2, 3).mean(axis=1),
                               [r["train_loss"] for r in history], rtol=1e-5)
    seconds = per_epoch(scalars, "train_step/seconds")[1]
    assert len(seconds) == 6 and np.all(seconds > 0)
    assert images == {"cells/normal": [1, 2], "cells/reduce": [1, 2]}

    # the console: a compact line per cell; the 14x8 op weight matrices in log.txt only
    log = open(os.path.join(run, "log.txt")).read()
    assert "op weights (normal cell; columns none, max_pool_3x3" in log
    assert "op weights (" not in out
    assert re.search(r"normal cell: .*x\d.*; strongest op weight per edge \d\.\d{3}-\d\.\d{3} "
                     r"\(uniform 0\.125\)", out)
    assert "visualdl --logdir" in out


def train_flags(root, save, *extra):
    return ["--data", root, "--save", save, "--arch", "DARTS_V2", "--epochs", "2",
            "--layers", "2", "--init_channels", "4", "--batch_size", "8", "--max_steps", "3",
            "--report_freq", "1", "--visualdl", *extra]


def test_training_board_matches_the_log_and_continues_after_resume(cifar_root, tmp_path,
                                                                   monkeypatch):
    pytest.importorskip("visualdl")
    monkeypatch.chdir(tmp_path)
    # SIGTERM during step 1 of epoch 2: that step finishes, the run saves and stops
    real_drop_rng = sigterm_during(monkeypatch, 1, 1)
    assert cli.run_main(train_script.main, train_flags(cifar_root, "t")) == 128 + signal.SIGTERM
    (run,) = glob.glob("eval-t-*")
    monkeypatch.setattr(loop, "drop_rng", real_drop_rng)
    resume = ["--resume", run, "--visualdl", "--report_freq", "1"]
    assert cli.run_main(train_script.main, resume) == 0

    scalars, images = read_board(run)
    log = open(os.path.join(run, "log.txt")).read()
    # as logged: "train_acc %f" and "valid_acc %f top5 %f", in percent
    train_acc = [float(v) / 100 for v in re.findall(r"train_acc (\S+)", log)]
    test_acc, test_top5 = zip(*((float(a) / 100, float(b) / 100)
                                for a, b in re.findall(r"valid_acc (\S+) top5 (\S+)", log)))
    for tag, logged in (("accuracy/train", train_acc), ("accuracy/test", test_acc),
                        ("accuracy/test_top5", test_top5)):
        steps, values = per_epoch(scalars, tag)
        assert steps == [1, 2]
        np.testing.assert_allclose(values, logged, atol=1e-6, err_msg=tag)
    meta = load_checkpoint(os.path.join(run, "checkpoint.npz"))[1]
    assert per_epoch(scalars, "accuracy/test")[1][-1] == pytest.approx(meta["test_acc"])
    np.testing.assert_allclose(per_epoch(scalars, "lr/weights")[1][0], 0.025, rtol=1e-6)
    # 0.2 x epoch / epochs
    np.testing.assert_allclose(per_epoch(scalars, "drop_path_prob")[1], [0.0, 0.1], rtol=1e-6)
    # every step once, counted over the run (3 an epoch): the resumed run went on at 5,
    # in the same file; equal batches, so an epoch's step accuracies average to train_acc
    steps, top1 = per_epoch(scalars, "train_step/accuracy")
    assert steps == list(range(6))
    np.testing.assert_allclose(top1.reshape(2, 3).mean(axis=1), train_acc, atol=1e-6)
    assert images == {"cells/normal": [0], "cells/reduce": [0]}


def test_missing_visualdl_is_one_line_naming_pip(fashion_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "visualdl", None)  # import fails as if not installed
    assert cli.run_main(train_search.main, search_flags(fashion_root, "m")) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "pip install visualdl" in err
    assert not glob.glob("search-m-*")  # before anything is written
    assert cli.run_main(train_script.main, ["--data", fashion_root, "--visualdl"]) == 2
    assert "pip install visualdl" in capsys.readouterr().err
    argv = ["--eval_only", "--model_path", "best.npz", "--visualdl"]
    assert cli.run_main(train_script.main, argv) == 2
    assert "--eval_only writes no run directory: drop --visualdl" in capsys.readouterr().err


def test_file_only_records_skip_the_console(tmp_path, capsys):
    logs.setup_logging(str(tmp_path))
    log = logging.getLogger("darts_paddle.test")
    log.info("for both")
    log.info("for the file", extra=logs.FILE_ONLY)
    for handler in logging.getLogger(logs.LOGGER).handlers:
        handler.flush()
    out = capsys.readouterr().out
    assert "for both" in out and "for the file" not in out
    text = open(tmp_path / "log.txt").read()
    assert "for both" in text and "for the file" in text


def test_board_is_off_without_the_flag_and_off_rank_0(tmp_path, monkeypatch):
    import genotypes

    monkeypatch.setitem(sys.modules, "visualdl", None)  # any import of it would fail
    vdl.check_available(False)
    assert vdl.open_board(False, str(tmp_path), 3) is vdl.OFF
    assert vdl.open_board(True, str(tmp_path), 3, is_main=False) is vdl.OFF
    vdl.OFF.epoch({"epoch": 1, "train_loss": 1.0, "alpha_entropy": {"normal": 2.0}})
    vdl.OFF.step(0, 1, loss=1.0)
    vdl.OFF.cells(genotypes.DARTS_V2, 1)
    assert os.listdir(tmp_path) == []
