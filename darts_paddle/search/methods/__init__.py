"""Search methods behind one protocol (darts.Darts): how the architecture parameters
become the weight of every op on every edge, what they add to the loss, and what the
programs are fed.  One module per method, each registering itself with its flags and rules
(registry.py): darts.py (and the protocol), daas.py, dadarts.py (with topk.py), pcdarts.py;
loss terms that compose with any method derive from terms.LossTerm, one module each."""

import importlib
import pkgutil

# the published methods register first, in this order (--method's choices, the flags' order)
from . import darts, daas, dadarts, pcdarts  # noqa: F401
from .daas import Daas
from .dadarts import Dadarts
from .darts import ARCH, HESSIAN, UNROLL, WEIGHTS, Darts
from .pcdarts import Pcdarts
from .registry import add_method_flags, flag_names, make_method, method_classes
from .terms import LossTerm

# every other module here registers after them, so a new method or loss term is one new
# file (which may import from this package: its names are set by now)
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

# the package's own methods and every flag of theirs (the search checkpoint's RUN_FLAGS,
# which --resume takes back), fixed once they have registered
METHODS = tuple(method_classes)
FLAGS = flag_names()

__all__ = ["ARCH", "HESSIAN", "UNROLL", "WEIGHTS", "METHODS", "FLAGS", "make_method",
           "add_method_flags", "Darts", "Daas", "Dadarts", "Pcdarts", "LossTerm"]
