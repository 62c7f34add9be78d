"""The search spaces a search runs in (--space): each a module with the same names (the
flags it checks and sets, its config and programs, how a cell is derived from the
architecture parameters, written, read, counted, scored and drawn), which the loop and
the report reach through `of`."""

from . import darts, nb201

SPACES = {module.NAME: module for module in (darts, nb201)}
DEFAULT = darts.NAME


def of(name):
    """The space module of --space `name`."""
    return SPACES[name]
