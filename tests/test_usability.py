"""Small things users hit: where --save puts a run, "did you mean" for genotype and op
names, and the mode of the files runs write."""

import contextlib
import os
import stat

import numpy as np
import pytest

from darts_paddle.run.context import make_save_dir
from darts_paddle.errors import UserError
from darts_paddle.genotype import parse_genotype, save_genotype_json
from darts_paddle.registry import resolve_arch
from darts_paddle.storage.atomic import write_atomic
from darts_paddle.storage.checkpoint import save_checkpoint
from darts_paddle.viz.command import main as visualize_main

REGISTRY = {"DARTS_V1": None, "DARTS_V2": None, "NASNet": None}  # only the names matter


# --- --save ----------------------------------------------------------------------------

@pytest.mark.parametrize("save, parent", [
    ("EXP", "."),                      # a name: the current directory, as the original
    ("runs/deep/exp", "runs/deep"),    # a relative path: its directory, created
])
def test_save_names_the_run_and_its_directory(save, parent, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = make_save_dir(save, "search")
    assert os.path.isdir(path)
    assert os.path.normpath(os.path.dirname(path)) == os.path.normpath(parent)
    name = os.path.basename(path)
    assert name.startswith(f"search-{os.path.basename(save)}-") and len(name) == len(
        f"search-{os.path.basename(save)}-20260101-120000")


def test_save_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = make_save_dir(str(tmp_path / "elsewhere" / "exp"), "eval")
    assert os.path.dirname(path) == str(tmp_path / "elsewhere")
    assert os.path.basename(path).startswith("eval-exp-")
    assert os.listdir(tmp_path) == ["elsewhere"]  # nothing like ./eval-/... appeared


def test_save_without_a_name_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"--save runs/ names no run: give NAME or DIR/NAME"):
        make_save_dir("runs/", "search")
    assert os.listdir(tmp_path) == []


# --- did you mean ----------------------------------------------------------------------

@pytest.mark.parametrize("typed, meant", [("darts_v2", "DARTS_V2"), ("nasnet", "NASNet"),
                                          ("DARTS_V3", "DARTS_V2")])
def test_unknown_genotype_names_suggest_ignoring_case(typed, meant):
    with pytest.raises(UserError) as err:
        resolve_arch(typed, REGISTRY)
    assert f"unknown genotype '{typed}' (did you mean '{meant}'?)" in str(err.value)


def test_nothing_close_suggests_nothing():
    with pytest.raises(UserError) as err:
        resolve_arch("zzzz", REGISTRY)
    assert "did you mean" not in str(err.value)


def test_visualize_wrong_case_is_one_line_with_the_suggestion(tmp_path, capsys):
    assert visualize_main(["darts_v2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(did you mean 'DARTS_V2'?)" in err
    assert os.listdir(tmp_path) == []


def test_unknown_op_in_a_literal_suggests_ignoring_case():
    literal = ("Genotype(normal=[('Sep_Conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2], "
               "reduce=[('max_pool_3x3', 0), ('skip_connect', 1)], reduce_concat=[2])")
    with pytest.raises(UserError, match=r"unknown op 'Sep_Conv_3x3' \(did you mean "
                                        r"'sep_conv_3x3'\?\)"):
        parse_genotype(literal)


# --- file modes ------------------------------------------------------------------------

@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077], ids=["022", "002", "077"])
def test_written_files_get_the_mode_the_umask_gives(mask, tmp_path):
    genotype = resolve_arch("DARTS_V2")
    with umask(mask):
        with open(tmp_path / "plain.txt", "w") as f:  # what open() gives
            f.write("x")
        paths = [save_checkpoint(str(tmp_path / "checkpoint.npz"), {"w": np.ones(2)}, {}),
                 save_genotype_json(genotype, tmp_path / "genotype.json"),
                 write_atomic(tmp_path / "history.json", lambda f: f.write("[]"), mode="w")]
        # replacing a file gives the new one the same mode
        paths.append(save_checkpoint(str(tmp_path / "checkpoint.npz"), {"w": np.ones(3)}, {}))
    expected = 0o666 & ~mask
    assert stat.S_IMODE(os.stat(tmp_path / "plain.txt").st_mode) == expected
    for path in paths:
        assert stat.S_IMODE(os.stat(path).st_mode) == expected, path
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "genotype.json", "history.json",
                                            "plain.txt"]
