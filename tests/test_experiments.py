"""python -m darts_paddle.experiments.nb201_table on tiny settings: one search per method
and seed, the table checked against the runs' own files and NAS-Bench-201's table, and a
second call that finds everything done."""

import json
import os

import numpy as np
import pytest

from darts_paddle.experiments import nb201_table
from darts_paddle.nb201 import arch, table

TINY = ["--", "--init_channels", "4", "--layers", "1", "--batch_size", "4", "--epochs", "1",
        "--max_steps", "2", "--eigen_batches", "0"]


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.skipif(not table.available(), reason="needs pip install 'darts-paddle[nb201]'")
def test_the_table_is_what_the_runs_found(fashion_root, tmp_path, capsys):
    out = str(tmp_path / "res")
    argv = ["--out", out, "--seeds", "0", "1", "--methods", "darts", "pcdarts",
            "--data", fashion_root, *TINY]
    assert nb201_table.main(argv) == 0
    res = json.load(open(os.path.join(out, "results.json")))
    for method in ("darts", "pcdarts"):
        row = res["rows"][method]
        cells = []
        for run in row["runs"]:
            with open(os.path.join(run, "genotype.json")) as f:
                cells.append(arch.from_json(json.load(f)))
        assert row["cells"] == [arch.format_arch(c) for c in cells]
        for dataset in table.DATASETS:
            means = [np.mean(table.rows(dataset)[table.key(c)]["val_acc"]) for c in cells]
            assert row["accuracy"][dataset] == pytest.approx([np.mean(means), np.std(means)])
        assert row["collapsed"] == sum(
            all(op in ("none", "skip_connect", "avg_pool_3x3") for op in c) for c in cells)
    assert "pcdarts, 2 seeds" in open(os.path.join(out, "results.md")).read()
    capsys.readouterr()
    assert nb201_table.main(argv) == 0  # nothing is searched again
    assert capsys.readouterr().out.count(": done (") == 4
