"""Data-parallel search under `python -m paddle.distributed.launch --nproc_per_node 2` on
the CPU (gloo).

tests/helpers/search_probe.py runs in 2 processes and saves what each computed; here one process
recomputes it from the published definitions: every gradient is the mean of the gradients
of the processes' halves of the batch (first order), and so is lambda_max's Hessian-vector
product, the second-order alpha gradient is DARTS's formula with those mean gradients (R
from the mean v), and weights, alphas and
optimizer buffers are bit-identical across the processes after several steps of each
method.  Then train_search.py itself: rank 0 alone writes, and an interrupted 2-process
search resumes where the uninterrupted one ends."""

import glob
import json
import os
import shutil

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

import_paddle()

from darts_paddle import cli  # noqa: E402
from darts_paddle.search import collapse  # noqa: E402
from darts_paddle.search.architect import OFF  # noqa: E402
from darts_paddle.search.methods import ARCH, HESSIAN, UNROLL  # noqa: E402
from darts_paddle.storage.checkpoint import load_checkpoint  # noqa: E402

import train_search  # noqa: E402
from tests.helpers import launching  # noqa: E402
from tests.helpers import search_probe as probe_script  # noqa: E402
from tests.helpers import search_runs  # noqa: E402
from tests.helpers.launching import REPO, launched  # noqa: E402

pytestmark = [pytest.mark.distributed, pytest.mark.subprocess, pytest.mark.slow]

HALVES = (slice(0, 2), slice(2, 4))  # the two processes' parts of a batch of 4


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    out = tmp_path_factory.mktemp("probe")
    done = launching.launch(out, out / "logs", [str(out)],
                            os.path.join(REPO, "tests", "helpers", "search_probe.py"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {(m, r): dict(np.load(out / f"{m}-rank{r}.npz")) for m in probe_script.CASES
            for r in (0, 1)}


@launched
@pytest.mark.parametrize("method", probe_script.CASES)
def test_processes_stay_bit_identical(probe, method):
    rank0, rank1 = probe[(method, 0)], probe[(method, 1)]
    assert rank0.keys() == rank1.keys()
    assert any(k.startswith("after/adam_") for k in rank0)
    assert any(k.startswith("after/momentum_") for k in rank0)
    for key in rank0:
        if "bn." not in key:  # BN statistics are each process's own, as in train.py
            assert np.array_equal(rank0[key], rank1[key]), key
    # and the steps did move the architecture (DAAS's alphas are still frozen: its betas)
    moved = [k for k in rank0 if k.startswith(("after/alphas_", "after/betas_"))
             and not np.array_equal(rank0[k], rank0["before/" + k[len("after/"):]])]
    assert moved


def single_process(method="darts"):
    """The probe's supernet in one process, with a mean-over-halves gradient pass."""
    programs, runner, architect = probe_script.make(method, 1)

    def mean_gradient(seed, kind, names, weights=None):
        if weights is not None:
            runner.set_all(weights)
        x, y = probe_script.global_batch(seed)
        parts = []
        for half in HALVES:
            architect.gradient((x[half], y[half]), OFF, kind)
            parts.append({n: runner.get(programs.gradient_name(n)) for n in names})
        return {n: (parts[0][n] + parts[1][n]) / 2 for n in names}, parts[0]
    return programs, runner, mean_gradient


@launched
def test_gradients_are_the_mean_over_the_processes_parts(probe):
    programs, _, mean_gradient = single_process()
    names = [*programs.arch.names, *programs.network.params.banks]
    mean, first_half = mean_gradient(1, ARCH, names)
    dump = probe[("darts", 0)]
    for name in names:
        np.testing.assert_allclose(dump["grad/" + name], mean[name], rtol=1e-12, atol=1e-15,
                                   err_msg=name)
    # one process's own gradient is not what it used
    assert not np.allclose(dump["grad/alphas_normal"], first_half["alphas_normal"], rtol=1e-3)


@launched
def test_hessian_vector_products_are_the_mean_over_the_processes_parts(probe):
    """Each process's product is the mean of the products on the two halves (each half
    with its own BN statistics), so every process gets the same lambda_max."""
    programs, runner, architect = probe_script.make("darts", 1)
    x, y = probe_script.global_batch(1)
    halves = collapse.AlphaHessian(architect, [(x[h], y[h]) for h in HALVES])
    expected = halves(probe_script.direction(halves.size))
    assert np.abs(expected).max() > 1e-3
    for rank in (0, 1):
        np.testing.assert_allclose(probe[("darts", rank)]["hessian"], expected, rtol=0,
                                   atol=1e-10 * np.abs(expected).max())


@launched
def test_second_order_gradient_is_dartss_formula_on_the_mean_gradients(probe):
    programs, runner, mean_gradient = single_process()
    dump, cfg = probe[("darts", 0)], programs.config
    names = programs.state_names()
    runner.set_all({names[k[len("before/"):]]: v for k, v in dump.items()
                    if k.startswith("before/")})
    banks, alphas = programs.network.params.banks, programs.arch.names
    w = {b: dump["before/" + b] for b in banks}
    m = {b: dump["before/momentum_" + b] for b in banks}
    assert max(np.abs(v).max() for v in m.values()) > 0
    eta = probe_script.ETA
    g = mean_gradient(3, UNROLL, banks)[0]  # dL_train/dw
    w_virtual = {b: w[b] - eta * (cfg.momentum * m[b] + g[b] + cfg.weight_decay * w[b])
                 for b in banks}
    at_virtual = mean_gradient(4, ARCH, [*banks, *alphas], w_virtual)[0]
    v, d_alpha = ({n: at_virtual[n] for n in banks}, {n: at_virtual[n] for n in alphas})
    for b in banks:
        np.testing.assert_allclose(dump["second/v/" + b], v[b], rtol=1e-10, atol=1e-14,
                                   err_msg=b)
    for a in alphas:
        np.testing.assert_allclose(dump["second/d/" + a], d_alpha[a], rtol=1e-10, atol=1e-14,
                                   err_msg=a)
    radius = 0.01 / np.sqrt(sum((v[b] ** 2).sum() for b in banks))
    assert float(dump["second/R"]) == pytest.approx(radius, rel=1e-12)
    g_plus = mean_gradient(3, HESSIAN, alphas, {b: w[b] + radius * v[b] for b in banks})[0]
    g_minus = mean_gradient(3, HESSIAN, alphas, {b: w[b] - radius * v[b] for b in banks})[0]
    for a in alphas:
        expected = d_alpha[a] - eta * (g_plus[a] - g_minus[a]) / (2 * radius)
        np.testing.assert_allclose(dump["second/" + a], expected, rtol=0,
                                   atol=1e-9 * np.abs(expected).max(), err_msg=a)


# --------------------------------------------------------------------------- train_search.py

def search_flags(root, save):
    # first order: the probe above checks the second-order gradient
    return search_runs.search_flags(root, save, "--max_steps", "2")


CUT = """
from darts_paddle import cli
from darts_paddle.search import loop
import train_search

real_epoch = loop.train_epoch

def train_epoch(epoch, *args, **kwargs):
    if epoch == 1:
        raise KeyboardInterrupt  # both processes stop at the start of epoch 2
    return real_epoch(epoch, *args, **kwargs)

loop.train_epoch = train_epoch
sys.exit(cli.run_main(train_search.main))
"""


def checkpoint(run):
    return load_checkpoint(os.path.join(run, "checkpoint.npz"))


@pytest.fixture(scope="module")
def full_search(fashion_root, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("full_search")
    done = launching.launch(cwd, cwd / "logs", search_flags(fashion_root, "full"),
                            os.path.join(REPO, "train_search.py"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run,) = glob.glob(str(cwd / "search-*"))  # one run directory: rank 0's
    return cwd, run


@launched
def test_rank_zero_alone_logs_and_writes(full_search):
    cwd, run = full_search
    assert sorted(os.listdir(run)) == ["checkpoint.npz", "genotype.json", "history.json",
                                       "log.txt"]
    log = open(os.path.join(run, "log.txt")).read()
    assert "data parallel: 2 processes" in log and "2 images each per step" in log
    assert log.count("epoch 2 lr") == 1
    assert [r["epoch"] for r in json.load(open(os.path.join(run, "history.json")))] == [1, 2]
    assert "epoch 1 lr" not in open(cwd / "logs" / "workerlog.1").read()


@launched
def test_interrupted_search_resumes_where_the_uninterrupted_one_ends(full_search,
                                                                    fashion_root, tmp_path):
    _, full = full_search
    cut = launching.launch(tmp_path, tmp_path / "logs_cut", search_flags(fashion_root, "cut"),
                           launching.wrapper(tmp_path, "cut_search.py", CUT))
    assert cut.returncode != 0
    (run,) = glob.glob(str(tmp_path / "search-cut-*"))
    assert checkpoint(run)[1]["epoch"] == 1
    alone = shutil.copytree(run, str(tmp_path / "search-alone"))
    resumed = launching.launch(tmp_path, tmp_path / "logs_resume", ["--resume", run],
                               os.path.join(REPO, "train_search.py"))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    (a, meta_a), (b, meta_b) = checkpoint(full), checkpoint(run)
    assert meta_a["epoch"] == meta_b["epoch"] == 2 and a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert json.load(open(os.path.join(full, "genotype.json"))) == json.load(
        open(os.path.join(run, "genotype.json")))
    # one process continues it too, on whole batches (BN then normalises over the whole
    # batch instead of each half, so it does not end bit-identically)
    start = checkpoint(alone)[0]
    assert cli.run_main(train_search.main, ["--resume", alone]) == 0
    c, meta_c = checkpoint(alone)
    assert meta_c["epoch"] == 2 and c.keys() == a.keys()
    assert all(np.isfinite(c[k]).all() for k in c)
    assert not np.array_equal(c["alphas_normal"], start["alphas_normal"])
