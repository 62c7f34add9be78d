"""The architecture parameters of a search, owned by one object: the alphas of both cell
types and, for DAAS and PC-DARTS, the betas (one per input edge of the nodes that have
them).  Each belongs to a group ("alphas", "betas") that has its own Adam and learning
rate; names, shapes, initial values and reading them back live here.  Code that treats a
group alike (the optimizers, lambda_max's Hessian) asks for the group; a method reads its
own parameters by name."""

from dataclasses import dataclass
from typing import Tuple

import numpy as np


@dataclass(frozen=True)
class ArchParameter:
    name: str
    shape: Tuple[int, ...]
    group: str  # "alphas" or "betas"
    start: object  # the mean of the initial values: a float or an array of `shape`
    noise: float  # their standard deviation


class ArchParameters:
    def __init__(self, parameters):
        self.parameters = list(parameters)

    @classmethod
    def alphas(cls, layout, ops, noise):
        """alphas_<cell> [edges, ops] ~ noise x N(0, 1), for every cell type of the
        methods.layout.Layout `layout`."""
        return cls(ArchParameter(f"alphas_{c}", (layout.edges, ops), "alphas", 0.0, noise)
                   for c in layout.cells)

    @classmethod
    def betas(cls, layout, nodes, start, noise):
        """betas_<cell>, one per input edge of each node in `nodes`, for every cell type
        ~ start + noise x N(0, 1); start: a float or an array of their shape."""
        shape = (sum(layout.inputs[n] for n in nodes),)
        return cls(ArchParameter(f"betas_{c}", shape, "betas", start, noise)
                   for c in layout.cells)

    def __add__(self, other):
        return ArchParameters(self.parameters + other.parameters)

    @property
    def names(self):
        return [p.name for p in self.parameters]

    def shapes(self):
        return {p.name: list(p.shape) for p in self.parameters}

    def group(self, group):
        """The names of one group, in order ([] when the method has none)."""
        return [p.name for p in self.parameters if p.group == group]

    def initial_values(self, rng):
        return {p.name: p.start + p.noise * rng.standard_normal(p.shape) for p in self.parameters}

    def materialize(self, shared):
        """{name: variable} in the program being built."""
        return {p.name: shared.parameter(p.name, list(p.shape)) for p in self.parameters}

    def read(self, runner):
        """{name: array}: their current values."""
        return {name: runner.get(name) for name in self.names}


def split_per_node(betas, layout, nodes):
    """One cell's betas -> [the betas of each node in `nodes`] (one per input edge)."""
    sizes = [layout.inputs[n] for n in nodes]
    return np.split(np.asarray(betas, np.float64), np.cumsum(sizes)[:-1])
