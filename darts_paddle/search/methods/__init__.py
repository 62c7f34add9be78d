"""Search methods behind one protocol (darts.Darts): how the architecture parameters
become the weight of every op on every edge, and what they add to the loss.  One module
per method: darts.py (and the protocol), daas.py, dadarts.py (with topk.py), pcdarts.py."""

import dataclasses

from .daas import Daas
from .dadarts import Dadarts
from .darts import ARCH, HESSIAN, UNROLL, WEIGHTS, Darts
from .pcdarts import Pcdarts

METHODS = ("darts", "daas", "dadarts", "pcdarts")
# the command-line flags of the methods (besides --method): Dadarts's options, composable
# with plain DARTS, and PC-DARTS's (None: not given)
DADARTS_FLAGS = tuple(f.name for f in dataclasses.fields(Dadarts) if f.name != "recipe")
PCDARTS_FLAGS = tuple(f.name for f in dataclasses.fields(Pcdarts))
FLAGS = DADARTS_FLAGS + PCDARTS_FLAGS

__all__ = ["ARCH", "HESSIAN", "UNROLL", "WEIGHTS", "METHODS", "FLAGS", "make_method",
           "Darts", "Daas", "Dadarts", "Pcdarts"]


def make_method(method="darts", **flags):
    """The method of the command-line flags: `method` and FLAGS.  DADARTS's options compose
    with plain DARTS; --method dadarts turns its recipe on.  ValueError on a contradiction,
    its message naming the fix."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; one of {METHODS}")
    pc = {k: v for k in PCDARTS_FLAGS if (v := flags.pop(k, None)) is not None}
    dadarts = Dadarts(recipe=method == "dadarts", **flags)
    if method in ("daas", "pcdarts") and dadarts.active:
        raise ValueError(f"{method.upper()} does not combine with the DADARTS options: drop "
                         "the DADARTS flags or use --method darts")
    if pc and method != "pcdarts":
        raise ValueError(f"{', '.join('--' + k for k in pc)}: PC-DARTS's, not "
                         f"{method.upper()}'s: add --method pcdarts or drop them")
    if method == "daas":
        return Daas()
    if method == "pcdarts":
        return Pcdarts(**pc)
    return dadarts if dadarts.active else Darts()
