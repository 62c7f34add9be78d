"""Search methods behind one protocol (darts.Darts): how the architecture parameters
become the weight of every op on every edge, and what they add to the loss.  One module
per method: darts.py (and the protocol), daas.py, dadarts.py (with topk.py)."""

import dataclasses

from .daas import Daas
from .dadarts import Dadarts
from .darts import ARCH, HESSIAN, UNROLL, WEIGHTS, Darts

METHODS = ("darts", "daas", "dadarts")
# the command-line flags of the methods (besides --method): Dadarts's options
FLAGS = tuple(f.name for f in dataclasses.fields(Dadarts) if f.name != "recipe")

__all__ = ["ARCH", "HESSIAN", "UNROLL", "WEIGHTS", "METHODS", "FLAGS", "make_method",
           "Darts", "Daas", "Dadarts"]


def make_method(method="darts", **flags):
    """The method of the command-line flags: `method` and FLAGS.  DADARTS's options compose
    with plain DARTS; --method dadarts turns its recipe on.  ValueError on a contradiction."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; one of {METHODS}")
    dadarts = Dadarts(recipe=method == "dadarts", **flags)
    if method == "daas":
        if dadarts.active:
            raise ValueError("DAAS does not combine with the DADARTS options")
        return Daas()
    return dadarts if dadarts.active else Darts()
