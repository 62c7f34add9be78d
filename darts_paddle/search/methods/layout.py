"""What a search method sees of its space's cells: the cell types that have their own
architecture parameters, how many input edges each node has (edges are numbered node by
node, each node's inputs in order), and the ops of a mixed op (alpha's columns).  Methods
read it instead of the DARTS space's constants, so the same method runs on another space
(NAS-Bench-201) where its rules have a meaning."""

from dataclasses import dataclass
from typing import Tuple

from ...genotype import CELLS, PRIMITIVES, STEPS


@dataclass(frozen=True)
class Layout:
    name: str  # the space's --space
    cells: Tuple[str, ...]
    inputs: Tuple[int, ...]  # input edges of each node
    primitives: Tuple[str, ...]

    @property
    def edges(self):
        return sum(self.inputs)

    @property
    def nodes(self):
        return tuple(range(len(self.inputs)))

    def first_edge(self, node):
        """The row of alpha of `node`'s first input edge."""
        return sum(self.inputs[:node])


# the paper's cell: node k reads the two cell inputs and nodes 0 .. k-1
DARTS = Layout("darts", CELLS, tuple(k + 2 for k in range(STEPS)), tuple(PRIMITIVES))
