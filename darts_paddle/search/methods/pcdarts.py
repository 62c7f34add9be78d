"""PC-DARTS (--method pcdarts), as its authors' code computes it (docs/methods.md):

  partial channel connections: the first 1/k of each edge's input channels go through its
      mixed op, the others bypass it (max-pooled 2x2 on a reduction cell's stride-2
      edges), then channel_shuffle(concat(op output, bypass), k)   (supernet.py; k = --pc_k)
  edge normalisation: every edge's output times softmax(beta)_j over the edges j of its
      node, every node (node 0 too); beta ~ 1e-3 N(0, 1) like alpha
      W = softmax(alpha) x softmax(beta), and W's BYPASS column softmax(beta)
  warm-up: no architecture update in the first 15 of 50 epochs (scaled to --epochs)
  genotype: edges ranked by max over the ops but 'none' of softmax(alpha) x softmax(beta),
      each kept edge with its strongest op (their Network.genotype)
  a new run's defaults: batch 256, weight lr 0.1 cosine to 0, arch lr 6e-4 (the paper's)
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...cli import non_negative_int, positive_int
from ...genotype import genotype_from_weights, softmax
from ...paddle_static import F, paddle
from ..arch_params import ArchParameters, split_per_node
from . import graph, registry
from .darts import Darts

DEFAULT_K = 4  # the authors' CIFAR setting (2 on ImageNet)
WARMUP, PAPER_EPOCHS = 15, 50  # train_search.py: `if epoch >= 15: architect.step(...)`
# train_search.py's defaults where they differ from DARTS's (the paper's section 4.2)
PAPER_FLAGS = {"batch_size": 256, "learning_rate": 0.1, "learning_rate_min": 0.0,
               "arch_learning_rate": 6e-4}


@registry.register_method
@dataclass
class Pcdarts(Darts):
    pc_k: int = DEFAULT_K
    warmup_epochs: Optional[int] = None  # None: WARMUP of PAPER_EPOCHS, scaled to the run

    name = "pcdarts"
    summary = ("PC-DARTS (partial channels, edge normalisation, warm-up), whose new runs "
               "default to --batch_size 256 --learning_rate 0.1 --learning_rate_min 0 "
               "--arch_learning_rate 6e-4 (the paper's)")
    # None: not given (set_run_flags fills them in for a new run)
    flags = (
        registry.Flag("pc_k", "PC-DARTS: 1/K of each edge's input channels go through its "
                      "mixed op (default 4; --init_channels must divide by K)",
                      type=positive_int, default=None),
        registry.Flag("warmup_epochs", "PC-DARTS: epochs that train the weights alone before "
                      "the first architecture update (default 15 of 50: 30%% of --epochs, "
                      "rounded down)", type=non_negative_int, default=None),
    )
    betas_label = "softmax(beta)"

    @classmethod
    def refusal(cls, method, **values):
        given = ", ".join("--" + flag for flag, value in values.items() if value is not None)
        return f"{given}: PC-DARTS's, not {method.upper()}'s: add --method pcdarts or drop them"

    @classmethod
    def build(cls, method, **values):
        return cls(**{flag: value for flag, value in values.items() if value is not None})

    @property
    def partial_channels(self):
        return self.pc_k

    def arch_parameters(self):
        """alphas [edges, ops] and betas [edges] (one per edge: every node normalises its
        edges) per cell type (DARTS: [14, 8] and [14]), all ~ 1e-3 N(0, 1) as the authors'
        _initialize_alphas."""
        return (ArchParameters.alphas(self.layout, len(self.primitives), 1e-3)
                + ArchParameters.betas(self.layout, self.layout.nodes, 0.0, 1e-3))

    def warmup(self, epochs):
        """15 epochs of 50 unless --warmup_epochs says otherwise: 30 % of `epochs`, rounded
        down (0 for a run of 3 epochs or fewer)."""
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        return WARMUP * epochs // PAPER_EPOCHS

    def set_run_flags(self, args, given):
        """The paper's batch and learning rates, k = 4 and the warm-up of `warmup` where the
        command line gives none; the warm-up is fixed here, so that a resume with more
        --epochs keeps it."""
        defaults = {**PAPER_FLAGS, "pc_k": DEFAULT_K, "warmup_epochs": self.warmup(args.epochs)}
        for flag, value in defaults.items():
            if flag not in given:
                setattr(args, flag, value)
        if args.init_channels % args.pc_k:
            raise ValueError(f"--init_channels {args.init_channels} does not split into "
                             f"--pc_k {args.pc_k} parts: give channels that divide by it")
        if args.warmup_epochs >= args.epochs:
            raise ValueError(f"--warmup_epochs {args.warmup_epochs} leaves none of the "
                             f"{args.epochs} epochs to the architecture: give fewer")

    def op_weights(self, arch, feeds):
        """Every cell type at once: softmax(alpha) rows times their edge's softmax(beta),
        the betas per node on a padded [nodes, widest] table (graph.by_node); the last
        column (supernet.py's BYPASS) is softmax(beta) itself."""
        layout, nodes = self.layout, self.layout.nodes
        soft = F.softmax(graph.stacked(arch, "alphas", layout), axis=-1)
        share = F.softmax(graph.by_node(graph.stacked(arch, "betas", layout), layout, nodes,
                                        -1e30), axis=1)
        edge = graph.to_edges(share, layout, nodes, 1.0)  # [cells * edges, 1]: all have one
        return graph.per_cell(paddle.concat([soft * edge, edge], axis=1), layout), None

    def betas_numpy(self, arch, normalised=True):
        """{cell: [the betas of every node]}: softmax per node (the edge weights), or raw."""
        return {c: [softmax(p) if normalised else p
                    for p in split_per_node(arch[f"betas_{c}"], self.layout, self.layout.nodes)]
                for c in self.layout.cells}

    def genotype(self, arch, max_skip=None):
        """Their genotype(): the op weights of each edge times its softmax(beta), then the
        DARTS parse (the 2 edges of each node whose strongest op but 'none' is strongest)."""
        weights, betas = self.op_weights_numpy(arch), self.betas_numpy(arch)
        scaled = {c: weights[c] * np.concatenate(betas[c])[:, None] for c in self.layout.cells}
        return genotype_from_weights(scaled["normal"], scaled["reduce"], self.primitives,
                                     max_skip=max_skip)
