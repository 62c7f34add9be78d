"""history.json: one record per finished epoch of a run, rewritten atomically."""

import json
import os

from .atomic import write_atomic

HISTORY = "history.json"


def write_history(save_dir, history):
    """Rewrite the records; strict JSON (a non-finite number is a bug: the loops stop a
    diverged run before they record its epoch)."""
    write_atomic(os.path.join(save_dir, HISTORY),
                 lambda f: json.dump(history, f, indent=1, allow_nan=False), mode="w")


def read_history(save_dir, epochs):
    """The records of the first `epochs` epochs of a run directory ([] for a new run)."""
    path = os.path.join(save_dir, HISTORY)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)[:epochs]
