"""Plain DARTS, and the protocol every search method follows (the other methods subclass
it): its name, flags and compatibility rules (registry.py), the architecture parameters,
the op weights W [edges, ops] of each cell type in the program (one column per op of the
space's layout, 'none' first), the values the programs are fed (per epoch, per pass, from
the current alphas), and the genotype.  What a method knows of the space's cells is its
`layout` (layout.py: the DARTS space's unless make_method is given another).

The passes of a search step (the Architect), each of which a method may weight differently:
  UNROLL   the training-batch gradient that gives w' (second order)
  ARCH     L_val, whose alpha gradient the architect follows
  HESSIAN  the training-batch passes at w +- R v (second order)
  WEIGHTS  the weight step, and validation
"""

import numpy as np

from ...genotype import genotype_from_weights, softmax
from ...paddle_static import F
from ..arch_params import ArchParameters
from . import registry
from .layout import DARTS

UNROLL, ARCH, HESSIAN, WEIGHTS = "unroll", "arch", "hessian", "weights"


@registry.register_method
class Darts:
    name = "darts"  # its --method; an instance's: the --method it runs under
    layout = DARTS  # the space's cells (make_method sets the run's)
    spaces = None  # the --space values its rules have a meaning in (None: every one)
    summary = None  # its entry in the help of --method
    flags = ()  # its own command-line options (registry.Flag)
    extends = ()  # the methods its options may join (that run then builds this class)
    partial_channels = 1  # 1/k of each edge's input channels go through its mixed op (PC-DARTS)
    betas_label = None  # what betas_numpy's normalised values are, for the log
    loss_terms = ()  # the loss terms (terms.py) make_method attached

    @property
    def primitives(self):
        """The ops of its mixed op, alpha's columns."""
        return self.layout.primitives

    # ------------------------------------------------------------------ from the flags

    @classmethod
    def in_use(cls, **values):
        """Do its options `values` ({flag: value}) change what a run computes?  By default:
        does any differ from its default."""
        return registry.differs_from_defaults(cls, values)

    @classmethod
    def refusal(cls, method, **values):
        """The message refusing its options in use under `--method method`."""
        given = ", ".join("--" + flag for flag in values)
        return f"{given}: {cls.name}'s, not {method}'s: add --method {cls.name} or drop them"

    @classmethod
    def build(cls, method, **values):
        """The instance a run of `--method method` (its name, or one of `extends`) computes
        with, from its options."""
        return cls(**values)

    def set_run_flags(self, args, given):
        """Set a new run's flags that the command line leaves out (`given`: those it names)
        to the method's own defaults, and check them; ValueError on a contradiction."""

    def arch_parameters(self):
        """alphas [edges, ops] per cell type (DARTS: [14, 8]), ~ 1e-3 N(0, 1) as the
        original."""
        return ArchParameters.alphas(self.layout, len(self.primitives), 1e-3)

    # ------------------------------------------------------------------ fed values

    def epoch_feeds(self, epoch, epochs):
        """{feed name: array} that the programs read at 0-based `epoch` of `epochs`."""
        return {}

    def pass_feeds(self, kind, epoch):
        """{feed name: array}: how pass `kind` weights the ops at 0-based `epoch`."""
        return {}

    follows_alpha = False  # do the programs read values computed from the current alphas?

    def alpha_feeds(self, arch, feeds):
        """{feed name: array} computed on the host from the alphas `arch` (raw values) and
        the epoch's `feeds`."""
        return {}

    def feed_shapes(self, training):
        """{feed name: shape} a program reads: the gradient program (training) or the
        inference program."""
        return {}

    alpha_frozen_epochs = 0  # alpha's learning rate is 0 in this many first epochs

    def alpha_lr_factor(self, epoch):
        """Factor of alpha's learning rate at 0-based `epoch`."""
        return 0.0 if epoch < self.alpha_frozen_epochs else 1.0

    def warmup(self, epochs):
        """The first epochs of a run of `epochs` without any architecture update (no
        validation pass, no Adam step): the weights alone train."""
        return 0

    # ------------------------------------------------------------------ in the program

    def op_weights(self, arch, feeds):
        """({cell: W [edges, 8]}, the method's own loss or None) from the architecture
        parameters and the fed values (variables by name).  Its own loss is part of the
        method, built from the same tensors as W; terms that compose with any method are
        loss terms (terms.py)."""
        return {c: F.softmax(arch[f"alphas_{c}"], axis=-1) for c in self.layout.cells}, None

    # ------------------------------------------------------------------ results

    def op_weights_numpy(self, arch):
        """{cell: normalised op weights [edges, len(primitives)]} from raw values."""
        return {c: softmax(np.asarray(arch[f"alphas_{c}"], np.float64))
                for c in self.layout.cells}

    def betas_numpy(self, arch, normalised=True):
        """{cell: [edge weights per node]} of the nodes that have them (DAAS: 1..3, PC-DARTS:
        0..3), else {}."""
        return {}

    def genotype(self, arch, max_skip=None):
        """The DARTS space's genotype of the raw values `arch`; `max_skip`: P-DARTS's cap
        on the normal cell's skip_connect ops (genotype.derive_cell).  (Another space derives
        its cells from `op_weights_numpy`.)"""
        weights, betas = self.op_weights_numpy(arch), self.betas_numpy(arch, normalised=False)
        return genotype_from_weights(weights["normal"], weights["reduce"], self.primitives,
                                     betas.get("normal"), betas.get("reduce"), max_skip)
