"""train_search.py end to end on a tiny Fashion-MNIST written in the idx format: the
result files, exact resume after Ctrl-C, the resume rule (the run's own flags, more
--epochs), a diverged search, and the errors of a bad resume."""

import glob
import json
import os
import signal

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

import_paddle()

from darts_paddle import cli  # noqa: E402
from darts_paddle.search import architect  # noqa: E402
from darts_paddle.storage.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from darts_paddle.genotype import genotype_from_json, load_genotype_json  # noqa: E402

from tests.helpers.search_runs import run_dir, search_flags  # noqa: E402
import train_search  # noqa: E402


def final_state(path):
    return load_checkpoint(os.path.join(path, "checkpoint.npz"))


@pytest.mark.slow
def test_search_resumes_bit_identical_after_ctrl_c(fashion_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.run_main(train_search.main, search_flags(fashion_root, "full", "--unrolled")) == 0
    full = run_dir("full")
    assert "genotype = Genotype(" in capsys.readouterr().out
    history = json.load(open(os.path.join(full, "history.json")))
    assert [r["epoch"] for r in history] == [1, 2]
    assert np.array(history[0]["softmax_alphas_normal"]).shape == (14, 8)
    assert genotype_from_json(history[-1]["genotype"]) == load_genotype_json(
        os.path.join(full, "genotype.json"))

    # the same search, Ctrl-C during the second step of epoch 2, then --resume
    real_step, calls = architect.Architect.weight_step, []

    def interrupted(self, batch):
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(self, batch)

    monkeypatch.setattr(architect.Architect, "weight_step", interrupted)
    assert cli.run_main(train_search.main, search_flags(fashion_root, "cut", "--unrolled")) == 130
    cut = run_dir("cut")
    arrays, meta = final_state(cut)
    assert (meta["epoch"], meta["step"]) == (1, 2)
    monkeypatch.setattr(architect.Architect, "weight_step", real_step)
    assert cli.run_main(train_search.main, ["--resume", cut]) == 0  # the run's own flags

    (a, meta_a), (b, meta_b) = final_state(full), final_state(cut)
    assert meta_a == meta_b
    assert a.keys() == b.keys() and any(k.startswith("adam_") for k in a)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert json.load(open(os.path.join(cut, "history.json"))) == history


@pytest.mark.slow
def test_bad_resume_says_why_and_keeps_the_checkpoint(fashion_root, tmp_path, monkeypatch,
                                                      capsys):
    monkeypatch.chdir(tmp_path)
    args = search_flags(fashion_root, "run", "--epochs", "1", "--max_steps", "1")
    assert cli.run_main(train_search.main, args) == 0
    path = run_dir("run")
    checkpoint = os.path.join(path, "checkpoint.npz")
    saved = open(checkpoint, "rb").read()
    capsys.readouterr()
    # what saves killed by kill -9 leave; a resume clears them before anything else
    for stale in "checkpoint.npz.a1b2c3d4.tmp", "history.json.tmp", "genotype.json.x_y_z_ab.tmp":
        open(os.path.join(path, stale), "w").write("half")
    kept = sorted(os.listdir(path))

    assert cli.run_main(train_search.main, [*args, "--layers", "5", "--resume", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--layers 5 (checkpoint: 3)" in err
    assert open(checkpoint, "rb").read() == saved
    assert sorted(os.listdir(path)) == [n for n in kept if not n.endswith(".tmp")]
    assert open(os.path.join(path, "log.txt")).read().splitlines()[-1].endswith(err.strip())

    open(checkpoint, "wb").write(saved[: len(saved) // 2])
    assert cli.run_main(train_search.main, [*args, "--resume", path]) == 2
    assert "unreadable" in capsys.readouterr().err

    assert cli.run_main(train_search.main, [*args, "--resume", "no-such-run"]) == 2
    assert "no such directory" in capsys.readouterr().err


@pytest.mark.slow
def test_daas_search_records_betas_and_draws_them(fashion_root, tmp_path, monkeypatch, capsys):
    from darts_paddle.viz.evolution import render_evolution

    monkeypatch.chdir(tmp_path)
    argv = search_flags(fashion_root, "daas", "--method", "daas")
    assert cli.run_main(train_search.main, argv) == 0
    path = run_dir("daas")
    history = json.load(open(os.path.join(path, "history.json")))
    record = history[-1]
    assert record["primitives"][0] == "max_pool_3x3" and len(record["primitives"]) == 7
    assert np.array(record["softmax_alphas_reduce"]).shape == (14, 7)
    assert [len(b) for b in record["softmax_betas_normal"]] == [3, 4, 5]
    arrays, meta = final_state(path)
    assert arrays["betas_normal"].shape == (12,) and meta["flags"]["method"] == "daas"
    names = sorted(os.path.basename(p) for p in render_evolution(path))
    assert "betas_normal.png" in names and "betas_reduce.png" in names
    # a resume that names another method is refused, naming the flag
    capsys.readouterr()
    argv = search_flags(fashion_root, "x", "--method", "darts", "--resume", path)
    assert cli.run_main(train_search.main, argv) == 2
    assert "--method darts (checkpoint: daas)" in capsys.readouterr().err
    # a DAAS checkpoint from before the port followed its authors is refused by revision
    del meta["methods_revision"]
    save_checkpoint(os.path.join(path, "checkpoint.npz"), arrays, meta)
    argv = search_flags(fashion_root, "daas", "--method", "daas", "--resume", path)
    assert cli.run_main(train_search.main, argv) == 2
    err = capsys.readouterr().err
    assert "methods revision 1" in err and "start a new search" in err


def test_dadarts_flags_conflicting_with_daas_are_one_error(fashion_root, tmp_path, monkeypatch,
                                                           capsys):
    monkeypatch.chdir(tmp_path)
    argv = search_flags(fashion_root, "bad", "--method", "daas", "--hd_on_weights")
    assert cli.run_main(train_search.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--method darts" in err and len(err.splitlines()) == 1
    assert not glob.glob("search-bad-*")  # nothing written


@pytest.mark.slow
def test_resume_alone_continues_with_the_runs_flags(fashion_root, tmp_path, monkeypatch,
                                                    capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.run_main(train_search.main, search_flags(fashion_root, "run", "--epochs", "1")) == 0
    path = run_dir("run")
    capsys.readouterr()
    # finished: said so, nothing changed
    assert cli.run_main(train_search.main, ["--resume", path]) == 2
    err = capsys.readouterr().err
    assert "finished all 1 epochs" in err and "--epochs above 1" in err
    # a flag that contradicts the run is refused by name, even at its default value
    assert cli.run_main(train_search.main, ["--resume", path, "--epochs", "2",
                                            "--dataset", "cifar10"]) == 2
    assert "--dataset cifar10 (checkpoint: fashion_mnist)" in capsys.readouterr().err
    # more epochs: allowed and logged; every other flag is the run's (--layers 3, not 8)
    assert cli.run_main(train_search.main, ["--resume", path, "--epochs", "2"]) == 0
    log = open(os.path.join(path, "log.txt")).read()
    assert "changed on resume: --epochs 2 (the run's: 1)" in log
    args_line = [line for line in log.splitlines() if "args = " in line][-1]  # the resumed run's
    assert "'layers': 3" in args_line and "'epochs': 2" in args_line
    history = json.load(open(os.path.join(path, "history.json")))
    assert [r["epoch"] for r in history] == [1, 2]
    assert final_state(path)[1]["flags"]["epochs"] == 2


@pytest.mark.slow
def test_diverged_search_stops_and_keeps_the_last_good_checkpoint(fashion_root, tmp_path,
                                                                  monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    real_step, calls = architect.Architect.weight_step, []

    def diverging(self, batch):  # finite through epoch 1 (3 steps), nan from epoch 2 on
        calls.append(1)
        loss, acc = real_step(self, batch)
        return (float("nan") if len(calls) > 4 else loss), acc

    monkeypatch.setattr(architect.Architect, "weight_step", diverging)
    assert cli.run_main(train_search.main, search_flags(fashion_root, "nan")) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "Traceback" in line
           or line.startswith("error: ")]  # the rest is progress bars
    assert len(err) == 1 and "diverged" in err[0] and "epoch 2 step 1" in err[0]
    assert "last good checkpoint" in err[0] and "--learning_rate" in err[0]
    path = run_dir("nan")
    assert final_state(path)[1]["epoch"] == 1
    assert not os.path.exists(os.path.join(path, "genotype.json"))
    # strict JSON: no NaN tokens
    text = open(os.path.join(path, "history.json")).read()
    records = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in history.json"))
    assert [r["epoch"] for r in records] == [1]


@pytest.mark.parametrize("layers", [1, 2])
def test_a_search_without_a_normal_cell_is_refused_before_it_writes(layers, fashion_root,
                                                                    tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.chdir(tmp_path)
    argv = search_flags(fashion_root, "flat", "--layers", str(layers))
    assert cli.run_main(train_search.main, argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --layers {layers} has no normal cell")
    assert err[0].endswith("search with --layers 3 or more")
    assert os.listdir(tmp_path) == []  # no run directory


@pytest.mark.slow
def test_pcdarts_search_warms_up_records_betas_and_resumes(fashion_root, tmp_path,
                                                            monkeypatch):
    """--method pcdarts end to end: the paper's flags where none are given, the warm-up (15
    of 50 epochs, here 1 of 4) fixed when the run starts, so that a resume with more
    --epochs keeps it; softmax(beta) of nodes 0-3 in history.json, and their plots."""
    from darts_paddle.viz.evolution import render_evolution

    monkeypatch.chdir(tmp_path)
    argv = search_flags(fashion_root, "pc", "--method", "pcdarts", "--pc_k", "2", "--epochs", "4",
                 "--eigen_batches", "0")
    assert cli.run_main(train_search.main, argv) == 0
    path = run_dir("pc")

    def adam_steps():  # Adam's beta1 power starts at 0.5 and halves with every step
        arrays, meta = final_state(path)
        (power,) = [v for k, v in arrays.items() if "beta1_pow" in k and "alphas_normal" in k]
        return round(np.log(float(power[0])) / np.log(0.5)) - 1, meta["flags"]

    steps, run_flags = adam_steps()
    assert steps == 3 * 3  # 3 steps in each of epochs 2-4: epoch 1 trained the weights alone
    log = open(os.path.join(path, "log.txt")).read()
    assert "epoch 1: warm-up, the weights train alone (the architecture from epoch 2 on)" in log
    assert "epoch 2: warm-up" not in log and "softmax(beta) (normal cell, per node with them)" in log
    assert (run_flags["warmup_epochs"], run_flags["learning_rate"], run_flags["batch_size"],
            run_flags["arch_learning_rate"], run_flags["pc_k"]) == (1, 0.1, 4, 6e-4, 2)
    history = json.load(open(os.path.join(path, "history.json")))
    assert [len(b) for b in history[-1]["softmax_betas_reduce"]] == [2, 3, 4, 5]
    assert abs(sum(history[-1]["softmax_betas_normal"][3]) - 1) < 1e-5
    names = sorted(os.path.basename(p) for p in render_evolution(path))
    assert "betas_normal.png" in names and "betas_reduce.png" in names
    # 8 epochs would warm up for 2; the run keeps its 1, and the architecture trains on
    assert cli.run_main(train_search.main, ["--resume", path, "--epochs", "8"]) == 0
    steps, run_flags = adam_steps()
    assert steps == 7 * 3 and run_flags["warmup_epochs"] == 1
