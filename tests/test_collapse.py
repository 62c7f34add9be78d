"""Signs of collapse and their remedies (search/collapse.py, the skip cap in genotype.py):
the exact alpha Hessian-vector product (double back-propagation) against the Hessian built
here by finite differences of the search's first-order gradient program in float64 on a
random subspace, the Lanczos iteration and its error bound against numpy.linalg.eigvalsh,
the state left bit-identical, the skip cap and DARTS-ES on hand-worked inputs, and a tiny
search that records the new fields and draws them.  The product against PyTorch's double
backward through the original network: tests/test_torch_architect.py."""

import dataclasses
import glob
import json
import math
import os

import numpy as np
import pytest
from scipy.stats import entropy

from darts_paddle.runtime import import_paddle

paddle = import_paddle()

from darts_paddle import cli  # noqa: E402
from darts_paddle.genotype import (  # noqa: E402
    PRIMITIVES, derive_cell, derive_genotype, genotype_from_json)
from darts_paddle.search import collapse  # noqa: E402
from darts_paddle.search.architect import OFF, Architect  # noqa: E402
from darts_paddle.search.methods import ARCH, make_method  # noqa: E402
from darts_paddle.search.programs import SearchConfig  # noqa: E402
from darts_paddle.search.supernet import ALPHAS  # noqa: E402
from darts_paddle.viz.command import main as visualize  # noqa: E402

from tests.helpers import search_reference  # noqa: E402
from tests.helpers.search_runs import run_dir, search_flags  # noqa: E402
import train_search  # noqa: E402

# float64, and the reference's finite-difference step 1e-5: no ReLU or max-pool switches
# inside it in a net this small (the paper's 0.01 would cross them), so it is exact to ~1e-9
TINY = SearchConfig(C=2, layers=3, num_classes=5, in_channels=3, image_size=8, dtype="float64")
STEP = 1e-5
BATCH, K = 4, 2  # images per batch, validation batches of the estimate
M = 6  # dimensions of the subspace the Hessian is checked on


def batches(seed, count=K):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((BATCH, 3, 8, 8)),
             rng.integers(0, TINY.num_classes, BATCH).astype(np.int64)) for _ in range(count)]


def mean_alpha_gradient(architect, data, alpha):
    """dL/dalpha at `alpha` ({name: array}), averaged over `data`, flattened: plain runs of
    the gradient program as the architect's validation pass, BN statistics untouched."""
    programs, runner = architect.programs, architect.runner
    runner.set_all(alpha)
    total = 0.0
    for x, y in data:
        architect.gradient((x, y), OFF, ARCH)
        total = total + np.concatenate([runner.get(programs.gradient_name(a)).ravel()
                                        for a in ALPHAS])
    return total / len(data)


def unflatten(vector, like):
    parts = np.split(vector, np.cumsum([like[a].size for a in ALPHAS])[:-1])
    return {a: p.reshape(like[a].shape) for a, p in zip(ALPHAS, parts)}


@pytest.fixture(scope="module", params=["darts", "daas", "pcdarts"])
def projected(request):
    """A tiny search of each method whose alpha gradient is a gradient, and its Hessian on a
    random subspace: with P [alphas, M] orthonormal, the columns
    H p_j = (g(alpha + h p_j) - g(alpha - h p_j)) / 2h of H P over the K batches (2 x M x K
    gradient passes; the whole Hessian would take 2 x 224 x K, ~100 s here)."""
    cfg = dataclasses.replace(TINY, method=make_method(request.param),
                              C=4 if request.param == "pcdarts" else TINY.C)  # C/4 channels
    programs, runner = search_reference.make_search(cfg)
    architect = Architect(runner, programs)
    architect.set_epoch(1, 4)  # DAAS's loss terms on
    data = batches(2)
    alpha = {a: runner.get(a) for a in ALPHAS}
    flat = np.concatenate([alpha[a].ravel() for a in ALPHAS])
    basis, _ = np.linalg.qr(np.random.default_rng(7).standard_normal((flat.size, M)))
    h, columns = STEP, []
    for p in basis.T:
        plus = mean_alpha_gradient(architect, data, unflatten(flat + h * p, alpha))
        minus = mean_alpha_gradient(architect, data, unflatten(flat - h * p, alpha))
        columns.append((plus - minus) / (2 * h))
    runner.set_all(alpha)
    return architect, data, basis, np.stack(columns, axis=1)


def state(programs, runner):
    """Everything a search's checkpoint holds."""
    return {k: runner.get(name) for k, name in programs.state_names().items()}


@pytest.mark.slow
def test_hessian_vector_product_matches_the_hessians_columns(projected):
    architect, data, basis, columns = projected
    before = state(architect.programs, architect.runner)
    # a Hessian is symmetric: P^T H P checks the finite differences themselves
    restricted = basis.T @ columns
    # PC-DARTS's curvature is smaller (4e-4 here): its edge weights beta scale every op
    floor = 1e-4 if architect.method.name == "pcdarts" else 1e-3
    assert np.abs(restricted).max() > floor
    np.testing.assert_allclose(restricted, restricted.T, rtol=0,
                               atol=1e-7 * np.abs(restricted).max())
    product = collapse.AlphaHessian(architect, data)
    for c in np.random.default_rng(3).standard_normal((2, M)):
        # u = P c of any length: H u = (H P) c
        np.testing.assert_allclose(product(basis @ c), columns @ c, rtol=0,
                                   atol=1e-7 * np.linalg.norm(columns @ c))
    assert product.passes == 2 * K
    # the weight decay on the diagonal: H u + lambda u
    u = basis @ np.ones(M)
    decayed = collapse.AlphaHessian(architect, data, weight_decay=1e-3)
    np.testing.assert_allclose(decayed(u), columns @ np.ones(M) + 1e-3 * u, rtol=0,
                               atol=1e-7 * np.linalg.norm(columns @ np.ones(M)))
    after = state(architect.programs, architect.runner)  # bit-identical (DADARTS: the test below)
    assert all(np.array_equal(before[key], after[key]) for key in before)


@pytest.mark.slow  # the `projected` Hessian, ~20-40 s a method, is its cost too
def test_lanczos_finds_the_largest_eigenvalue(projected):
    """The Lanczos iteration on P^T H P through the search's Hessian-vector products against
    numpy.linalg.eigvalsh of the dense P^T H P: after M steps the Krylov space is the whole
    subspace, so they agree to the finite differences' accuracy, 1e-6 relatively."""
    architect, data, basis, columns = projected
    restricted = basis.T @ columns
    eigenvalues = np.linalg.eigvalsh((restricted + restricted.T) / 2)
    assert eigenvalues[0] < 0 < eigenvalues[-1]  # indefinite, as early in a search
    product = collapse.AlphaHessian(architect, data)
    ritz = collapse.lanczos(lambda c: basis.T @ product(basis @ c), np.ones(M), 20,
                            tolerance=0)
    assert ritz.steps == M and ritz.bound == 0
    assert ritz.value == pytest.approx(eigenvalues[-1], rel=1e-6)
    assert product.passes == K * M


def test_lanczos_on_a_known_matrix():
    """The largest eigenvalue, not the largest in magnitude (-3 here, where the power
    iteration would go); the tolerance ends it early; a zero operator gives 0."""
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    spectrum = np.concatenate([[-3.0, 2.0, 1.9], np.linspace(-1, 1, 37)])
    matrix = q @ np.diag(spectrum) @ q.T
    start = rng.standard_normal(40)
    exact = collapse.lanczos(lambda v: matrix @ v, start, 40, tolerance=0)
    assert exact.value == pytest.approx(2.0, rel=1e-12)
    early = collapse.lanczos(lambda v: matrix @ v, start, 40, tolerance=1e-6)
    assert early.steps < exact.steps and 0 < early.bound <= 1e-6 * early.value
    assert early.value == pytest.approx(2.0, rel=1e-5)
    # the bound holds at every step: some eigenvalue within it, none above lambda_max
    for steps in range(1, 12):
        ritz = collapse.lanczos(lambda v: matrix @ v, start, steps, tolerance=0)
        assert ritz.value <= 2.0 + 1e-12
        assert np.abs(spectrum - ritz.value).min() <= ritz.bound * (1 + 1e-9)
    assert collapse.lanczos(lambda v: 0 * v, np.ones(3), 5) == collapse.Ritz(0.0, 0.0, 1)


@pytest.mark.parametrize("method", ["daas", "dadarts"])
@pytest.mark.slow
def test_estimate_leaves_the_search_state_bit_identical(method):
    """Either order: the weights, BN statistics, alphas (DAAS's betas), both
    optimizers' buffers (their steps would move weights or alphas too) and the methods' fed
    values are exactly as before."""
    cfg = SearchConfig(C=2, layers=3, num_classes=5, image_size=8, unrolled=method == "daas",
                       method=make_method(method))
    programs, runner = search_reference.make_search(cfg)
    architect = Architect(runner, programs, unrolled=cfg.unrolled)
    architect.set_epoch(1, 4)  # DAAS's loss terms and DADARTS's top-k and one-hot on
    before, feeds = state(programs, runner), architect.refresh()
    estimate = collapse.lambda_max(architect, batches(6, count=1), 2, seed=0)
    assert math.isfinite(estimate.value) and estimate.value != 0
    assert estimate.passes == estimate.iterations == 2
    after = state(programs, runner)
    assert before.keys() == after.keys()
    for key in before:
        assert np.array_equal(before[key], after[key]), key
    assert architect.current_feeds.keys() == feeds.keys()
    for key in feeds:
        assert np.array_equal(architect.current_feeds[key], feeds[key]), key


# --------------------------------------------------------------------------- the skip cap

SKIP, OPS = "skip_connect", {op: k for k, op in enumerate(PRIMITIVES)}


def capped_weights():
    """Normalised op weights [14, 8] of a normal cell with four skip_connect ops, of weights
    0.6, 0.5 (node 0), 0.65 (node 1), 0.55 (node 3); 'none' 0, and in each row the ops not
    set share what is left equally."""
    cells = {0: {SKIP: 0.6, "sep_conv_3x3": 0.3}, 1: {SKIP: 0.5, "dil_conv_3x3": 0.2},
             2: {"sep_conv_5x5": 0.4}, 3: {"max_pool_3x3": 0.35},
             4: {SKIP: 0.65, "avg_pool_3x3": 0.3}, 5: {"dil_conv_5x5": 0.45},
             6: {"sep_conv_3x3": 0.5}, 8: {SKIP: 0.3}, 9: {"sep_conv_3x3": 0.2},
             11: {"sep_conv_5x5": 0.25}, 12: {SKIP: 0.55, "sep_conv_3x3": 0.1},
             13: {"dil_conv_3x3": 0.3}}
    w = np.zeros((14, 8))
    for row in range(14):
        ops = cells.get(row, {})
        w[row, 1:] = (1 - sum(ops.values())) / (7 - len(ops))
        for op, value in ops.items():
            w[row, OPS[op]] = value
    return w


# worked by hand: each time the weakest skip_connect of the cell goes; node 0's input 1
# brings its dil_conv_3x3 (0.2); node 3's input 3 falls to sep_conv_3x3 (0.1) and gives way
# to input 2 (sep_conv_5x5 0.25); node 0's input 0 brings sep_conv_3x3 (0.3); node 1's
# input 2 falls to avg_pool_3x3 (0.3), below its inputs 0 (0.4) and 1 (0.35)
NODE0 = [(SKIP, 0), (SKIP, 1)]
NODE1 = [(SKIP, 2), ("sep_conv_5x5", 0)]
NODE2 = [("sep_conv_3x3", 1), ("dil_conv_5x5", 0)]
NODE3 = [(SKIP, 3), ("dil_conv_3x3", 4)]
NODE0_1 = [(SKIP, 0), ("dil_conv_3x3", 1)]
NODE3_1 = [("dil_conv_3x3", 4), ("sep_conv_5x5", 2)]
CAPPED = {
    4: NODE0 + NODE1 + NODE2 + NODE3,
    3: NODE0_1 + NODE1 + NODE2 + NODE3,
    2: NODE0_1 + NODE1 + NODE2 + NODE3_1,
    1: [("sep_conv_3x3", 0), ("dil_conv_3x3", 1)] + NODE1 + NODE2 + NODE3_1,
    0: [("sep_conv_3x3", 0), ("dil_conv_3x3", 1), ("sep_conv_5x5", 0), ("max_pool_3x3", 1)]
       + NODE2 + NODE3_1,
}


@pytest.mark.parametrize("cap", sorted(CAPPED))
def test_skip_cap_replaces_the_weakest_skips(cap):
    w = capped_weights()
    assert derive_cell(w) == CAPPED[4]
    assert derive_cell(w, max_skip=cap) == CAPPED[cap]
    assert derive_cell(w, max_skip=cap + 4) == CAPPED[4]
    # only the normal cell is capped
    g = derive_genotype(w, w, max_skip=cap)
    assert g.normal == CAPPED[cap] and g.reduce == CAPPED[4]


def test_skip_cap_in_daas_keeps_the_inputs_beta_chose():
    """DAAS: 7 ops, each node's two inputs by beta; a capped edge keeps its place there."""
    w = np.delete(capped_weights(), OPS["none"], axis=1)  # rows still sum to 1
    # alphas whose DAAS weights softmax(f(alpha)), f(t) = 2t cubed below -1, are w
    y = np.log(w)
    alphas = np.where(y < -1, np.cbrt(y), y) / 2
    # nodes 1, 2, 3 keep inputs (1, 2), (0, 1), (3, 4)
    betas = np.array([0.4, 0.5, 0.9, 0.9, 0.8, 0.2, 0.3, 0.1, 0.2, 0.3, 0.9, 0.8])
    arch = {"alphas_normal": alphas, "alphas_reduce": alphas,
            "betas_normal": betas, "betas_reduce": betas}
    method = make_method("daas")
    node1 = [(SKIP, 2), ("max_pool_3x3", 1)]
    assert method.genotype(arch).normal == NODE0 + node1 + NODE2 + NODE3
    # the skips go in the order 0.5, 0.55, 0.6; node 3 keeps input 3 with its sep_conv_3x3
    capped = method.genotype(arch, max_skip=1)
    assert capped.normal == [("sep_conv_3x3", 0), ("dil_conv_3x3", 1)] + node1 + NODE2 \
        + [("dil_conv_3x3", 4), ("sep_conv_3x3", 3)]
    assert capped.reduce == NODE0 + node1 + NODE2 + NODE3


def test_cell_statistics_count_and_average():
    w, uniform = capped_weights(), np.full((14, 8), 1 / 8)
    g = derive_genotype(w, uniform, max_skip=2)
    ops = {cell: [op for op, _ in getattr(g, cell)] for cell in ("normal", "reduce")}
    stats = collapse.cell_statistics(ops, {"normal": w, "reduce": uniform})
    assert stats["skip_connect"] == {"normal": 2, "reduce": 0}
    # normal: the two skips; reduce: every op ties, so max_pool_3x3 (the first but 'none')
    assert stats["parameter_free"] == {"normal": 2 / 8, "reduce": 1.0}
    assert stats["alpha_entropy"]["reduce"] == pytest.approx(math.log(8), rel=1e-12)
    assert stats["alpha_entropy"]["normal"] == pytest.approx(entropy(w, axis=1).mean(),
                                                             rel=1e-12)


# --------------------------------------------------------------------------- DARTS-ES

@pytest.mark.parametrize("series, expected", [
    ([1.0, 1.0, 1.0], None),  # fewer than 2 windows
    ([1.0, 1.0, 1.0, 1.0], (2, 1.0, False)),
    ([1.0, 1.0, 1.0, 1.5], (2, 1.25, False)),  # (1 + 1.5) / 2 / 1
    ([1.0, 1.0, 1.0, 1.7], (2, 1.35, True)),
    ([0.5, 1.5, 1.3, 1.4], (2, 1.35, True)),  # (1.3 + 1.4) / (0.5 + 1.5)
    ([100.0, 1.0, 1.0, 1.0, 2.0], (3, 1.5, True)),  # the windows slide: epoch 1 is out
    ([1.0, None, 1.0, 2.0], None),  # an epoch without an estimate
    ([-1.0, 0.5, 1.0, 2.0], None),  # a non-positive earlier mean: no ratio
])
def test_darts_es_on_a_synthetic_series(series, expected):
    verdict = collapse.darts_es(series, window=2, threshold=1.3, start=1)
    if expected is None:
        assert verdict is None
        return
    kept, ratio, stop = expected
    assert verdict["epoch"] == len(series) and verdict["kept_epoch"] == kept
    assert verdict["ratio"] == pytest.approx(ratio, rel=1e-12) and verdict["stop"] is stop


def test_darts_es_keeps_no_epoch_before_the_start():
    series = [1.0, 1.0, 1.0, 1.0, 1.0, 3.0]
    assert collapse.darts_es(series, window=3, threshold=1.3, start=3)["stop"]
    late = collapse.darts_es(series, window=3, threshold=1.3, start=4)
    assert late["kept_epoch"] == 3 and late["ratio"] > 1.3 and not late["stop"]
    # window 5, the paper's: epochs 6-10 against 1-5
    series = [0.1, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.4, 0.4, 0.4]
    verdict = collapse.darts_es(series, window=5, threshold=1.3, start=1)
    assert verdict["ratio"] == pytest.approx(1.8 / 1.0) and verdict["kept_epoch"] == 5


# --------------------------------------------------------------------------- a search

def tiny_flags(root, save, *extra):
    return search_flags(root, save, "--epochs", "3", "--max_steps", "1", "--eigen_batches", "1",
                        *extra)


@pytest.mark.slow
def test_search_records_the_signs_stops_early_and_draws_them(fashion_root, tmp_path,
                                                            monkeypatch, capsys):
    """A tiny search of 3 epochs with --max_skip 0 and DARTS-ES on one-epoch windows.  Each
    estimate is made, then replaced by 1 and 2: lambda_max doubles from epoch 1 to 2, so
    the rule stops after epoch 2 and returns epoch 1's architecture."""
    monkeypatch.chdir(tmp_path)
    real, made = collapse.lambda_max, []

    def rising(architect, batches, iterations, seed, weight_decay):
        assert weight_decay == 1e-3  # the alphas' weight decay, as RobustDARTS
        made.append(real(architect, batches, iterations, seed, weight_decay))
        return dataclasses.replace(made[-1], value=float(len(made)))

    monkeypatch.setattr(collapse, "lambda_max", rising)
    argv = tiny_flags(fashion_root, "es", "--eigen_batches", "2", "--eigen_iterations", "3",
                        "--max_skip", "0", "--early_stop_eigen", "--early_stop_window", "1",
                        "--early_stop_start", "1")
    assert cli.run_main(train_search.main, argv) == 0
    assert len(made) == 2
    for estimate in made:
        assert math.isfinite(estimate.value) and estimate.value != 0
        assert estimate.passes == 2 * estimate.iterations and estimate.iterations <= 3
    path = run_dir("es")
    history = json.load(open(os.path.join(path, "history.json")))
    assert [r["epoch"] for r in history] == [1, 2]
    assert [r["hessian_eigenvalue"] for r in history] == [1.0, 2.0]
    assert history[1]["early_stop"] == {"epoch": 2, "kept_epoch": 1, "ratio": 2.0, "stop": True}
    for record in history:
        assert record["skip_connect"]["normal"] == 0  # capped
        assert isinstance(record["skip_connect_uncapped"]["normal"], int)
        assert [op for op, _ in record["genotype"]["normal"]].count(SKIP) == 0
        for cell in ("normal", "reduce"):
            ops = [op for op, _ in record["genotype"][cell]]
            assert record["parameter_free"][cell] == pytest.approx(
                sum(op in ("max_pool_3x3", "avg_pool_3x3", SKIP) for op in ops) / 8)
            # a few steps leave the op weights nearly uniform
            assert 0.99 * math.log(8) < record["alpha_entropy"][cell] <= math.log(8)
    saved = json.load(open(os.path.join(path, "genotype.json")))
    assert genotype_from_json(saved) == genotype_from_json(history[0]["genotype"])
    log = open(os.path.join(path, "log.txt")).read()
    assert "epoch 2 lambda_max 2 +- " in log and "Hessian-vector products" in log
    assert "before --max_skip" in log and "keeps the alphas of epoch 1" in log
    assert visualize([path]) == 0
    png = os.path.join(path, "collapse.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 10_000
    capsys.readouterr()
    assert cli.run_main(train_search.main, ["--resume", path, "--epochs", "4"]) == 2
    err = capsys.readouterr().err
    assert "DARTS-ES stopped this search after epoch 2" in err and len(err.splitlines()) == 1


def test_collapse_flags_that_cannot_work_are_one_error(fashion_root, tmp_path, monkeypatch,
                                                       capsys):
    monkeypatch.chdir(tmp_path)
    argv = tiny_flags(fashion_root, "bad", "--early_stop_eigen", "--eigen_batches", "0")
    assert cli.run_main(train_search.main, argv) == 2
    assert "--eigen_batches 1 or more" in capsys.readouterr().err
    assert not glob.glob("search-bad-*")  # nothing written
    # 24 validation images: 6 batches of 4
    assert cli.run_main(train_search.main, tiny_flags(fashion_root, "big",
                                                        "--eigen_batches", "7")) == 2
    assert "6 batches of 4" in capsys.readouterr().err


def test_eigen_batches_are_cut_into_batches_of_the_given_size():
    """--eigen_batch_size: consecutive slices, the last one shorter; None keeps each batch."""
    x, y = np.arange(10 * 3).reshape(10, 3), np.arange(10)
    parts = collapse.cut([(x, y), (x[:4], y[:4])], 4)
    assert [len(b) for _, b in parts] == [4, 4, 2, 4]
    np.testing.assert_array_equal(np.concatenate([a for a, _ in parts[:3]]), x)
    np.testing.assert_array_equal(parts[3][1], y[:4])
    (whole,) = collapse.cut([(x, y)])
    np.testing.assert_array_equal(whole[0], x)
