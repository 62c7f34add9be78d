"""Runs that fail loudly and resume simply: a full disk while saving, the temporaries a
killed save leaves, and the error line in the log of a run that failed."""

import errno
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from darts_paddle.runtime import import_paddle

import_paddle()  # search_state builds on the search methods, which import Paddle

import genotypes as G  # noqa: E402
from darts_paddle import cli  # noqa: E402
from darts_paddle.run.logs import setup_logging  # noqa: E402
from darts_paddle.errors import UserError  # noqa: E402
from darts_paddle.genotype import load_genotype_json, save_genotype_json  # noqa: E402
from darts_paddle.storage import atomic  # noqa: E402
from darts_paddle.storage.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from darts_paddle.storage.history import HISTORY, read_history, write_history  # noqa: E402

NO_SPACE = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullDisk:
    """A file whose disk is full after `room` bytes: a larger write raises ENOSPC."""

    def __init__(self, f, room):
        self.f, self.room = f, room

    def write(self, data):
        if self.f.tell() + len(data) > self.room:
            raise NO_SPACE
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def fail(monkeypatch, where):
    """Make write_atomic fail with ENOSPC while writing, at fsync or at the rename."""
    if where == "write":
        monkeypatch.setattr(atomic, "open", lambda fd, mode: FullDisk(open(fd, mode), 100),
                            raising=False)
    else:
        def raise_no_space(*args):
            raise NO_SPACE
        monkeypatch.setattr(os, where, raise_no_space)


# per file runs write: (write the earlier version, write a new one, read it back, what
# reading the earlier version gives)
WRITERS = {
    "checkpoint.npz": (lambda path: save_checkpoint(path, {"w": np.zeros(3)}, {"epoch": 1}),
                       lambda path: save_checkpoint(path, {"w": np.arange(1e4)}, {"epoch": 2}),
                       lambda path: load_checkpoint(path)[1], {"epoch": 1}),
    HISTORY: (lambda path: write_history(os.path.dirname(path), [{"epoch": 1}]),
              lambda path: write_history(os.path.dirname(path),
                                         [{"epoch": 1}, {"epoch": 2, "genotype": "x" * 1000}]),
              lambda path: read_history(os.path.dirname(path), 10), [{"epoch": 1}]),
    "genotype.json": (lambda path: save_genotype_json(G.DARTS_V1, path),
                      lambda path: save_genotype_json(G.DARTS_V2, path),
                      load_genotype_json, G.DARTS_V1),
}


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_full_disk_is_one_error_line_and_keeps_the_earlier_file(name, where, tmp_path,
                                                                   monkeypatch):
    write_earlier, write_new, read, earlier = WRITERS[name]
    path = str(tmp_path / name)
    write_earlier(path)
    content = open(path, "rb").read()
    fail(monkeypatch, where)
    with pytest.raises(UserError) as info:
        write_new(path)
    monkeypatch.undo()
    message = str(info.value)
    assert message.startswith(f"cannot write {path}: [Errno 28] No space left on device; ")
    assert f"the previous {name}, if any, is intact" in message and "free space" in message
    assert "\n" not in message and ".tmp" not in message
    assert os.listdir(tmp_path) == [name]  # no temporary left
    assert open(path, "rb").read() == content and read(path) == earlier


def test_a_failing_write_function_leaves_no_temporary_and_keeps_its_error(tmp_path):
    path = tmp_path / "genotype.json"

    def broken(f):
        f.write("{")
        raise KeyError("not an OSError: a bug, it keeps its type")

    with pytest.raises(KeyError):
        atomic.write_atomic(path, broken, mode="w")
    assert os.listdir(tmp_path) == []


@pytest.mark.subprocess
def test_stale_temporaries_go_and_nothing_else(tmp_path):
    # a save killed mid-write, in a process of its own, leaves a real mkstemp temporary
    killed = ("import os, sys; from darts_paddle.storage.atomic import write_atomic; "
              "write_atomic(sys.argv[1], lambda f: (f.write(b'half'), f.flush(), os._exit(9)))")
    target = tmp_path / "checkpoint.npz"
    assert subprocess.run([sys.executable, "-c", killed, str(target)],
                          cwd=os.path.dirname(os.path.dirname(__file__))).returncode == 9
    (left,) = os.listdir(tmp_path)
    assert left.startswith("checkpoint.npz.") and left.endswith(".tmp")
    stale = [left, "best.npz.k3_j4h5g.tmp", "history.json.tmp", "genotype.json.a1b2c3d4.tmp"]
    kept = ["checkpoint.npz", "history.json", "log.txt", "notes.tmp", "data.csv.a1b2c3d4.tmp",
            "history.json.a1b2.tmp"]
    for name in stale[1:] + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / "inference").mkdir()
    (tmp_path / "inference" / "model.npz.a1b2c3d4.tmp").write_text("x")  # not ours to clear
    atomic.remove_stale_temporaries(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ["inference"])
    assert os.listdir(tmp_path / "inference") == ["model.npz.a1b2c3d4.tmp"]


@pytest.mark.parametrize("exc, status, line", [
    (UserError("--thing 3 is too big; pass 2 or less"), 2,
     "error: --thing 3 is too big; pass 2 or less"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_the_line_that_ends_a_run_goes_to_its_log_too(exc, status, line, tmp_path, capsys):
    def run(argv):
        setup_logging(str(tmp_path))
        logging.getLogger("darts_paddle.test").info("started %s", argv)
        raise exc

    assert cli.run_main(run, ["--x"]) == status
    log = (tmp_path / "log.txt").read_text().splitlines()
    assert "started ['--x']" in log[0] and log[-1].endswith(" " + line) and len(log) == 2
    out, err = capsys.readouterr()
    assert err == line + "\n" and line not in out  # once on the console


@pytest.mark.parametrize("old", ["darts-paddle-search/1", "darts-paddle-search-weights/1"])
def test_a_checkpoint_of_the_earlier_supernet_layout_is_refused(old, tmp_path):
    """Same array names and shapes, weights in another order: loading must not succeed."""
    import argparse

    from darts_paddle.search import state as search_state

    save_checkpoint(str(tmp_path / search_state.CHECKPOINT), {"bn.mean": np.zeros(3)},
                    {"format": old, "flags": {}})
    for load in (lambda: search_state.read_initial_state(str(tmp_path)),
                 lambda: search_state.load_state(argparse.Namespace(), {}, str(tmp_path))):
        with pytest.raises(UserError, match="earlier darts-paddle, whose supernet stored its "
                                            "weights in another order; start a new search"):
            load()
