"""Adding a method or a loss term is one new file: tests/example_method.py and
tests/example_loss_term.py register themselves as the package's own modules do, and then
appear among train_search.py's flags, are built by make_method and search together; the
term's loss and alpha gradient against numpy and finite differences."""

import dataclasses
import importlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

import_paddle()

from darts_paddle.search.architect import OFF, Architect  # noqa: E402
from darts_paddle.search.flags import search_parser  # noqa: E402
from darts_paddle.search.methods import (  # noqa: E402
    ARCH, FLAGS, HESSIAN, METHODS, WEIGHTS, make_method, registry)
from darts_paddle.search.programs import SearchConfig  # noqa: E402
from darts_paddle.search.supernet import ALPHAS  # noqa: E402

from tests.helpers import search_reference  # noqa: E402

T, C_SKIP = 2.0, 0.3
TINY = SearchConfig(C=2, layers=3, num_classes=5, in_channels=3, image_size=8, epochs=4,
                    unrolled=True, dtype="float64")


@pytest.fixture
def examples(monkeypatch):
    """The registry with both examples registered, as it was again afterwards."""
    monkeypatch.setattr(registry, "method_classes", dict(registry.method_classes))
    monkeypatch.setattr(registry, "loss_term_classes", dict(registry.loss_term_classes))
    modules = {}
    for name in ("tests.example_method", "tests.example_loss_term"):
        monkeypatch.delitem(sys.modules, name, raising=False)  # import registers anew
        modules[name.split(".")[-1]] = importlib.import_module(name)
    return modules


def batch(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, 3, 8, 8)), rng.integers(0, 5, 4).astype(np.int64)


def test_the_examples_are_among_the_search_flags(examples):
    parser = search_parser()
    assert parser.parse_args([]).alpha_temperature == 1.0 and parser.parse_args([]).skip_l2 == 0
    args = parser.parse_args(["--method", "tempered", "--alpha_temperature", "2",
                              "--skip_l2", "0.5"])
    text = parser.format_help()
    assert "{" + ",".join(METHODS) + ",tempered}" in text
    assert "tempered: DARTS with op weights" in text and "the squared op weights" in text
    method = make_method(args.method, **{k: getattr(args, k) for k in registry.flag_names()})
    assert isinstance(method, examples["example_method"].Tempered)
    assert method.alpha_temperature == 2.0 and [t.skip_l2 for t in method.loss_terms] == [0.5]
    # a method's flag belongs to it; a loss term joins any method
    with pytest.raises(ValueError, match="--alpha_temperature: tempered's, not darts's"):
        make_method("darts", alpha_temperature=2.0)
    assert [t.name for t in make_method("daas", skip_l2=0.1).loss_terms] == ["skip_l2"]
    assert make_method("pcdarts").loss_terms == ()


def skip_l2_numpy(alphas):
    """The term and its alpha gradient, by hand: L = c sum_rows p_s^2 with
    p = softmax(alpha / T), dL/dalpha_j = (2c / T) p_s^2 (delta_sj - p_j)."""
    from tests.example_loss_term import SKIP

    value, grads = 0.0, {}
    for name, a in alphas.items():
        z = a / T
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        ps = p[:, SKIP:SKIP + 1]
        value += C_SKIP * float((ps ** 2).sum())
        grads[name] = 2 * C_SKIP / T * ps ** 2 * (np.eye(p.shape[1])[SKIP] - p)
    return value, grads


def test_a_search_with_the_examples_runs_and_the_terms_gradient_is_right(examples):
    """The term joins the architect's pass (ARCH) alone: on the same batch, the ARCH pass's
    loss and alpha gradient minus the HESSIAN pass's are the term's, which numpy computes
    by hand and finite differences of the programs' losses confirm."""
    cfg = dataclasses.replace(TINY, method=make_method("tempered", alpha_temperature=T,
                                                       skip_l2=C_SKIP))
    programs, runner = search_reference.make_search(cfg)
    architect = Architect(runner, programs, unrolled=True)
    architect.set_epoch(1, cfg.epochs)
    assert float(architect.feeds(ARCH)["use_skip_l2"][0]) == 1.0
    assert float(architect.feeds(HESSIAN)["use_skip_l2"][0]) == 0.0
    data = batch(3)

    def passes():
        """The term's value and alpha gradient as the programs compute them."""
        with_term, _ = architect.gradient(data, OFF, ARCH)
        grads = {a: runner.get(programs.gradient_name(a)) for a in ALPHAS}
        without, _ = architect.gradient(data, OFF, HESSIAN)
        return with_term - without, {a: grads[a] - runner.get(programs.gradient_name(a))
                                     for a in ALPHAS}

    alphas = {a: runner.get(a) for a in ALPHAS}
    value, grads = passes()
    expected_value, expected = skip_l2_numpy(alphas)
    assert value == pytest.approx(expected_value, rel=1e-10)
    for a in ALPHAS:
        assert np.abs(expected[a]).max() > 1e-4
        np.testing.assert_allclose(grads[a], expected[a], rtol=1e-7, atol=1e-12)
    d, eps = {a: np.random.default_rng(5).standard_normal(alphas[a].shape) for a in ALPHAS}, 1e-6
    moved = []
    for sign in (1, -1):
        runner.set_all({a: alphas[a] + sign * eps * d[a] for a in ALPHAS})
        moved.append(passes()[0])
    runner.set_all(alphas)
    fd = (moved[0] - moved[1]) / (2 * eps)
    assert sum((grads[a] * d[a]).sum() for a in ALPHAS) == pytest.approx(fd, rel=1e-6)

    # and the whole search step, second order, then validation
    assert architect.step(batch(4), batch(5), eta=0.025) is not None
    architect.weight_step(batch(4))
    x, y = batch(6)
    loss, acc = runner.run(programs["evaluate"], x=x, y=y,
                           **architect.feeds(WEIGHTS, training=False))
    assert np.isfinite(loss) and 0 <= acc <= 1
    assert all(not np.array_equal(runner.get(a), alphas[a]) for a in ALPHAS)


DROPPED_IN = """
import importlib.util, json, os, sys
from darts_paddle.runtime import import_paddle
import_paddle()
import darts_paddle.search
package = os.path.dirname(darts_paddle.search.__file__) + "/methods"
spec = importlib.util.spec_from_file_location(
    "darts_paddle.search.methods", package + "/__init__.py",
    submodule_search_locations=[package, sys.argv[1]])
methods = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = methods
spec.loader.exec_module(methods)
print(json.dumps([methods.METHODS, methods.FLAGS]))
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_method_and_a_loss_term_dropped_into_the_package_register_themselves(tmp_path):
    """One new file each in darts_paddle/search/methods/ (here a second folder of that
    package, holding the two examples), and no other line: --method and the flags have them,
    after the published methods."""
    examples = os.path.dirname(os.path.abspath(__file__))
    for name in ("example_method", "example_loss_term"):
        shutil.copy(os.path.join(examples, name + ".py"), tmp_path / (name + ".py"))
    done = subprocess.run([sys.executable, "-c", DROPPED_IN, str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    methods, flags = json.loads(done.stdout.strip().splitlines()[-1])
    assert methods == [*METHODS, "tempered"]
    assert flags[-2:] == ["alpha_temperature", "skip_l2"] and flags[:-2] == list(FLAGS)
