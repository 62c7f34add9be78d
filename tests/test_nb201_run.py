"""train_search.py --space nb201 end to end on a tiny Fashion-MNIST: the arch string, the
table's scores of every epoch's cell in history.json and the log, resume, PC-DARTS's edge
weights per node, and the flags and methods this space refuses."""

import json
import os

import pytest

from darts_paddle.runtime import import_paddle

import_paddle()

from darts_paddle import cli  # noqa: E402
from darts_paddle.nb201 import arch, table  # noqa: E402

from tests.helpers.search_runs import run_dir, search_flags  # noqa: E402
import train_search  # noqa: E402

NB201 = ("--space", "nb201", "--layers", "1")  # one cell per stage


def history(path):
    with open(os.path.join(path, "history.json")) as f:
        return json.load(f)


@pytest.mark.slow
def test_a_search_prints_its_arch_string_and_scores_every_epochs_cell(fashion_root, tmp_path,
                                                                     monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.run_main(train_search.main, search_flags(fashion_root, "nb", *NB201)) == 0
    out, path = capsys.readouterr().out, run_dir("nb")
    with open(os.path.join(path, "genotype.json")) as f:
        ops = arch.from_json(json.load(f))
    assert f"genotype = {arch.format_arch(ops)}" in out
    records = history(path)
    assert [r["epoch"] for r in records] == [1, 2]
    assert arch.from_json(records[-1]["genotype"]) == ops
    assert len(records[-1]["softmax_alphas_normal"]) == 6
    assert len(records[-1]["softmax_alphas_normal"][0]) == len(arch.OPS)
    log = open(os.path.join(path, "log.txt")).read()
    assert "--weight_decay 0.0005" in log  # NAS-Bench-201's, the command line being silent
    if table.available():
        for record in records:
            cell = arch.from_json(record["genotype"])
            assert record["nb201"] == {d: pytest.approx(table.lookup(cell, d).mean, abs=1e-4)
                                       for d in table.DATASETS}
        assert "NAS-Bench-201 validation accuracy of the cell" in log
        assert f"cifar10 {records[-1]['nb201']['cifar10']:.2f}%" in out
        from darts_paddle.nb201.__main__ import main as score

        assert score([path]) == 0  # the run directory's cell, scored
        assert f"cell {arch.format_arch(ops)} (table key {table.key(ops)})" in \
            capsys.readouterr().out
    from darts_paddle.viz.command import render_search

    names = sorted(os.path.basename(p) for p in render_search(path))
    assert names == sorted(["alphas_normal.png", "collapse.png"]
                           + (["nb201.png"] if table.available() else []))
    # more epochs continue the run in its space
    assert cli.run_main(train_search.main, ["--resume", path, "--epochs", "3"]) == 0
    assert [r["epoch"] for r in history(path)] == [1, 2, 3]


@pytest.mark.slow
def test_pcdarts_weights_every_nodes_input_edges(fashion_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = search_flags(fashion_root, "pc", *NB201, "--method", "pcdarts", "--pc_k", "2",
                        "--init_channels", "4", "--epochs", "3")
    assert cli.run_main(train_search.main, argv) == 0
    betas = history(run_dir("pc"))[-1]["softmax_betas_normal"]
    assert [len(b) for b in betas] == [1, 2, 3]  # nodes 1, 2, 3 read 1, 2, 3 nodes
    assert all(abs(sum(b) - 1) < 1e-5 for b in betas)


@pytest.mark.parametrize("extra, words", [
    (("--method", "daas"), "--method daas has no meaning in --space nb201"),
    (("--method", "dadarts"), "use --method darts or pcdarts there"),
    (("--max_skip", "2"), "--max_skip caps the skip_connect ops"),
])
def test_what_has_no_meaning_in_the_space_is_refused_before_it_writes(
        extra, words, fashion_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.run_main(train_search.main, search_flags(fashion_root, "no", *NB201, *extra)) == 2
    assert words in capsys.readouterr().err
    assert not os.listdir(tmp_path)
