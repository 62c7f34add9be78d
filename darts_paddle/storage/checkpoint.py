"""Checkpoints: {name: numpy array} plus JSON metadata, in one .npz file written atomically
(atomic.py: a run killed or out of disk while saving leaves the previous checkpoint
intact, never half a file).  Metadata travel as a JSON string in the array `__meta__`;
nothing is pickled, so loading a checkpoint cannot run code.  Any unreadable file is a UserError naming it.
Generic on purpose: evaluation training and the search store different things in it.
"""

import json
import os
import zipfile

import numpy as np

from .atomic import write_atomic
from ..errors import UserError

META_KEY = "__meta__"
CHECKPOINT = "checkpoint.npz"  # the file of a run directory that --resume continues


def save_checkpoint(path, arrays, meta):
    """Write `arrays` ({name: array}) and `meta` (JSON-serialisable dict) to `path`."""
    if META_KEY in arrays:
        raise ValueError(f"{META_KEY!r} is reserved for the metadata")
    return write_atomic(path, lambda f: np.savez(
        f, **{META_KEY: np.array(json.dumps(meta))},
        **{name: np.asarray(value) for name, value in arrays.items()}))


def load_checkpoint(path):
    """-> (arrays, meta).  Raises UserError if the file is missing, truncated or not ours."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} does not exist; pass the checkpoint.npz (or best.npz) "
                        "that a training run wrote into its --save directory")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise UserError(f"checkpoint {path} is unreadable (truncated or not a checkpoint: "
                        f"{exc}); use an intact one, e.g. best.npz beside it") from None
    if META_KEY not in arrays:
        raise UserError(f"checkpoint {path} has no metadata: it was not written by darts-paddle")
    try:
        meta = json.loads(str(arrays.pop(META_KEY)))
    except json.JSONDecodeError as exc:
        raise UserError(f"checkpoint {path} has corrupt metadata ({exc}); use another one") from None
    return arrays, meta


def load_into(runner, names, arrays, mismatch):
    """Write `arrays[key]` into the scope variable `names[key]` for every key, after checking
    that every one is there with its variable's shape (nothing is written otherwise); a
    missing or misshapen one is a UserError with `mismatch(key, expected_shape, array or
    None)`."""
    for key, name in names.items():
        expected, value = runner.get(name).shape, arrays.get(key)
        if value is None or value.shape != expected:
            raise UserError(mismatch(key, expected, value))
    for key, name in names.items():
        runner.set(name, arrays[key])
