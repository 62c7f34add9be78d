"""--export onnx: train.py --eval_only and train_imagenet.py at the end of a run convert the
Paddle inference model with paddle2onnx; checked here by running the ONNX file with
onnxruntime and the Paddle inference model with Paddle's own predictor on the same batch."""

import glob
import os
import sys

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

paddle = import_paddle()

from darts_paddle import cli  # noqa: E402
from darts_paddle.train.export import ONNX_TOLERANCE  # noqa: E402

import train as train_script  # noqa: E402
import train_imagenet  # noqa: E402


def tiny(root, save, *extra):
    return ["--data", root, "--dataset", "cifar10", "--save", save, "--arch", "DARTS_V2",
            "--epochs", "1", "--max_steps", "2", "--layers", "3", "--init_channels", "4",
            "--batch_size", "8", *extra]


def onnx_against_paddle_predictor(directory, n=5, size=32):
    """Max |logit difference| of onnxruntime on model.onnx and Paddle's inference predictor
    on model.json/.pdiparams, on a batch of `n` random images (another size than the
    export's check batch)."""
    ort = pytest.importorskip("onnxruntime")
    x = np.random.default_rng(7).standard_normal((n, 3, size, size)).astype(np.float32)
    session = ort.InferenceSession(os.path.join(directory, "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    (feed,) = session.get_inputs()
    onnx_logits = session.run(None, {feed.name: x})[0]

    prefix = os.path.join(directory, "model")
    config = paddle.inference.Config(prefix + ".json", prefix + ".pdiparams")
    config.disable_gpu()
    predictor = paddle.inference.create_predictor(config)
    (name,) = predictor.get_input_names()
    handle = predictor.get_input_handle(name)
    handle.reshape(x.shape)
    handle.copy_from_cpu(x)
    predictor.run()
    paddle_logits = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()

    assert onnx_logits.shape == paddle_logits.shape == (n, 10)
    # logits that differ between the images: the comparison sees the input
    assert np.all(np.isfinite(paddle_logits)) and paddle_logits.std(axis=0).max() > 1e-2
    np.testing.assert_allclose(onnx_logits, paddle_logits, rtol=ONNX_TOLERANCE,
                               atol=ONNX_TOLERANCE)
    return float(np.abs(onnx_logits - paddle_logits).max())


def test_eval_only_exports_the_cifar_network_to_onnx(cifar_root, tmp_path, monkeypatch, capsys):
    pytest.importorskip("paddle2onnx")
    monkeypatch.chdir(tmp_path)
    assert cli.run_main(train_script.main, tiny(cifar_root, "c", "--auxiliary")) == 0
    (run,) = glob.glob("eval-c-*")
    capsys.readouterr()
    argv = ["--eval_only", "--model_path", os.path.join(run, "best.npz"), "--data", cifar_root,
            "--batch_size", "8", "--export", "onnx"]
    assert cli.run_main(train_script.main, argv) == 0
    out = capsys.readouterr().out
    assert "ONNX model saved to" in out and "max |logit difference| to Paddle" in out
    assert onnx_against_paddle_predictor(os.path.join(run, "inference")) <= ONNX_TOLERANCE


def test_train_imagenet_exports_its_network_to_onnx(cifar_root, tmp_path, monkeypatch):
    """The ImageNet network on 32x32 images (its stem reduces 8x), without the auxiliary
    head, which needs 224x224."""
    pytest.importorskip("paddle2onnx")
    monkeypatch.chdir(tmp_path)
    assert cli.run_main(train_imagenet.main, tiny(cifar_root, "i", "--export", "onnx")) == 0
    (run,) = glob.glob("eval-i-*")
    assert "ONNX model saved to" in open(os.path.join(run, "log.txt")).read()
    assert onnx_against_paddle_predictor(os.path.join(run, "inference")) <= ONNX_TOLERANCE


def test_missing_converter_is_one_line_naming_pip(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "paddle2onnx", None)  # import fails as if not installed
    argv = ["--eval_only", "--model_path", "nothing.npz", "--export", "onnx"]
    assert cli.run_main(train_script.main, argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "paddle2onnx" in err and "pip install paddle2onnx onnxruntime" in err
