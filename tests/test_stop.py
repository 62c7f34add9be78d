"""Stopping runs, in real processes: a diverged search exits with one line and no genotype;
SIGTERM and Ctrl-C (SIGINT) finish the step, save, exit with 128 + the signal, and the run
continues with `--resume DIR` alone."""

import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers.search_runs import search_flags

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(script, argv, cwd):
    return subprocess.Popen([sys.executable, os.path.join(REPO, script), *argv], cwd=str(cwd),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=300):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def signal_when_logged(process, log_glob, text, signum, timeout=240):
    """Send `signum` once a run's log.txt holds `text` (the loop is running)."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        logs = glob.glob(log_glob)
        if logs and text in open(logs[0]).read():
            process.send_signal(signum)
            return
        time.sleep(0.05)
    pytest.fail(f"{text!r} never appeared in {log_glob} (exit {process.poll()}): "
                f"{process.stderr.read()[-2000:] if process.poll() is not None else ''}")


def test_diverged_search_exits_with_one_line_and_no_genotype(fashion_root, tmp_path):
    code, out, err = finish(start("train_search.py",
                                  search_flags(fashion_root, "nan", "--learning_rate", "nan"),
                                  tmp_path))
    lines = err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("error: the search diverged"), err[-3000:]
    assert "Traceback" not in err and "no genotype is written" in lines[-1]
    (run,) = glob.glob(str(tmp_path / "search-nan-*"))
    assert not os.path.exists(os.path.join(run, "genotype.json"))
    assert "train with" not in out


def test_sigterm_stops_a_search_after_the_step_and_resume_alone_finishes_it(fashion_root,
                                                                            tmp_path):
    process = start("train_search.py", search_flags(fashion_root, "term"), tmp_path)
    signal_when_logged(process, str(tmp_path / "search-term-*" / "log.txt"), "epoch 1 lr",
                       signal.SIGTERM)
    code, _, err = finish(process)
    assert code == 128 + signal.SIGTERM, err[-3000:]
    assert "FatalError" not in err and "Traceback" not in err
    (run,) = glob.glob(str(tmp_path / "search-term-*"))
    assert os.path.isfile(os.path.join(run, "checkpoint.npz"))
    assert "continue with  python train_search.py --resume" in open(
        os.path.join(run, "log.txt")).read()
    code, out, err = finish(start("train_search.py", ["--resume", run], tmp_path))
    assert code == 0, err[-3000:]
    assert os.path.isfile(os.path.join(run, "genotype.json"))


def test_ctrl_c_stops_training_after_the_step_and_resume_alone_finishes_it(cifar_root,
                                                                          tmp_path):
    argv = ["--data", cifar_root, "--save", "int", "--arch", "DARTS_V2", "--epochs", "2",
            "--layers", "2", "--init_channels", "8", "--batch_size", "8", "--max_steps", "4",
            "--report_freq", "1"]
    process = start("train.py", argv, tmp_path)
    signal_when_logged(process, str(tmp_path / "eval-int-*" / "log.txt"), "epoch 1 lr",
                       signal.SIGINT)
    code, out, err = finish(process)
    assert code == 128 + signal.SIGINT, err[-3000:]
    assert "done:" not in out and "Traceback" not in err
    (run,) = glob.glob(str(tmp_path / "eval-int-*"))
    assert os.path.isfile(os.path.join(run, "checkpoint.npz"))
    code, out, err = finish(start("train.py", ["--resume", run], tmp_path))
    assert code == 0 and "done: best test accuracy" in out, err[-3000:]
