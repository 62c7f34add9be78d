"""DADARTS (--method dadarts, or its flags one by one with plain DARTS), as its authors'
code computes it (docs/methods.md).  The op weights of a pass are one of
  softmax   softmax(alpha)
  top-k     softmax(alpha) x TopK_edge(k=1) x TopK_node(k=2): the edge's 8 ops, and the
            node's edges x 8 ops flattened, 'none' included, node 0 too (topk.py)
  hard      per node, a one-hot on the top-1 op ('none' included) of its 2 edges whose
            top-1 weight is largest
chosen per pass as the authors' forward(x, use_topk, use_hd), top-k winning over hard:
  UNROLL   softmax (their virtual step)
  ARCH     top-k with --topk_on_alphas; + DAL with --dal_on_alphas
  HESSIAN  top-k with --topk_on_alphas
  WEIGHTS  top-k with --topk_on_weights, else hard with --hd_on_weights from epoch
           --hd_start (0-based)
DAL: factor x the mean over the normal cell's nodes of MSE(node's softmax, its hard one-hot).

The per-pass feeds `use_topk`, `use_hd`, `use_dal` switch them, the temperature is fed per
epoch; the hard one-hot and the top-k thresholds follow the alphas and are computed on the
host after every alpha update (a bisection in the program would cost ~250 ops).
"""

from dataclasses import dataclass

import numpy as np

from ...cli import non_negative_int
from ...genotype import CELLS, PRIMITIVES, STEPS, num_edges, softmax
from ...paddle_static import F, paddle
from . import graph, registry, topk
from .darts import ARCH, HESSIAN, UNROLL, WEIGHTS, Darts


def hard_mask_numpy(soft):
    """The authors' hard_discretization of both cells' softmax weights stacked [2 * edges, 8]:
    per node, a one-hot on the top-1 op of the 2 edges whose top-1 weight is largest."""
    mask, start = np.zeros_like(soft), 0
    for _ in CELLS:
        for node in range(STEPS):
            rows = soft[start:start + node + 2]
            keep = np.argsort(-rows.max(axis=1), kind="stable")[:2]
            mask[start + keep, rows[keep].argmax(axis=1)] = 1.0
            start += node + 2
    return mask


@registry.register_method
@dataclass
class Dadarts(Darts):
    hd_on_weights: bool = False
    hd_start: int = 0  # first epoch (0-based, as the authors count) of hard discretization
    topk_on_alphas: bool = False
    topk_on_weights: bool = False
    topk_temperature: float = 1.0
    linear_temperature_increase: bool = False
    linear_temperature_max: float = 200.0
    topk_exact_gradient: bool = False
    dal_on_alphas: bool = False
    dal_factor: float = 1.0
    recipe: bool = False  # --method dadarts: the published recipe's flags on

    name = "dadarts"
    summary = ("the DADARTS recipe (= --dal_on_alphas --topk_on_alphas "
               "--linear_temperature_increase --hd_on_weights)")
    extends = (Darts.name,)  # its options compose with plain DARTS
    # its top-k and hard masks keep 2 edges per node: a cell where every edge is kept
    # (NAS-Bench-201's) has no such choice (docs/methods.md)
    spaces = ("darts",)
    flags = (
        registry.Flag("hd_on_weights", "train weights (and validate) on the hard one-hot of "
                      "the alphas: per node the top-1 op of its 2 strongest edges",
                      action="store_true"),
        registry.Flag("hd_start", "first epoch (0-based, as the authors count) of hard "
                      "discretization; above 0 it implies --hd_on_weights",
                      type=non_negative_int),
        registry.Flag("topk_on_alphas", "soft top-k (1 op per edge, 2 edge-ops per node) in "
                      "the architect's passes", action="store_true"),
        registry.Flag("topk_on_weights", "soft top-k in the weight training forward and "
                      "validation", action="store_true"),
        registry.Flag("topk_temperature", "temperature t of the soft top-k (not used with "
                      "--linear_temperature_increase)", type=float),
        registry.Flag("linear_temperature_increase", "top-k temperature max * epoch / epochs "
                      "(0-based epoch: 0 at the first epoch)", action="store_true"),
        registry.Flag("linear_temperature_max", "that max", type=float),
        registry.Flag("topk_exact_gradient", "the top-k's exact gradient (t times the "
                      "authors', which leaves out the temperature's chain-rule factor)",
                      action="store_true"),
        registry.Flag("dal_on_alphas", "add the discretization loss (mean over the normal "
                      "cell's nodes of MSE(softmax(alpha), hard one-hot)) to the architect's "
                      "loss", action="store_true"),
        registry.Flag("dal_factor", "weight of that loss", type=float),
    )

    def __post_init__(self):
        if self.recipe:
            self.dal_on_alphas = self.topk_on_alphas = self.hd_on_weights = True
            self.linear_temperature_increase = True
        else:  # its options on plain DARTS
            self.name = Darts.name
        if self.hd_start > 0:  # the authors' controller: a start epoch switches it on
            self.hd_on_weights = True

    @classmethod
    def in_use(cls, **values):
        """Only the options that change what is computed count (a temperature alone
        does not)."""
        return cls(**values).active

    @classmethod
    def refusal(cls, method, **values):
        return (f"{method.upper()} does not combine with the DADARTS options: drop the "
                "DADARTS flags or use --method darts")

    @classmethod
    def build(cls, method, **values):
        return cls(recipe=method == cls.name, **values)

    @property
    def topk(self):
        return self.topk_on_alphas or self.topk_on_weights

    @property
    def active(self):
        """Does any option change what plain DARTS computes?"""
        return self.topk or self.hd_on_weights or self.dal_on_alphas

    def temperature(self, epoch, epochs):
        """Top-k temperature at 0-based `epoch`: fixed, or max * epoch / epochs (the
        authors' controller: 0 at the first epoch, where every top-k factor is 0.5)."""
        if not self.linear_temperature_increase:
            return self.topk_temperature
        return self.linear_temperature_max * epoch / epochs

    def epoch_feeds(self, epoch, epochs):
        return {"temperature": np.array([self.temperature(epoch, epochs)])} if self.topk else {}

    def pass_feeds(self, kind, epoch):
        use_topk = {UNROLL: False, ARCH: self.topk_on_alphas, HESSIAN: self.topk_on_alphas,
                    WEIGHTS: self.topk_on_weights}[kind]
        values = {}
        if self.topk:
            values["use_topk"] = use_topk
        if self.hd_on_weights:
            values["use_hd"] = kind == WEIGHTS and epoch >= self.hd_start
        if self.dal_on_alphas:
            values["use_dal"] = kind == ARCH
        return {k: np.array([float(v)]) for k, v in values.items()}

    follows_alpha = True

    def alpha_feeds(self, arch, feeds):
        """The top-k thresholds at this epoch's `feeds["temperature"]`, the hard one-hot."""
        soft = np.concatenate([softmax(np.asarray(arch[f"alphas_{c}"], np.float64))
                               for c in CELLS])
        result = {}
        if self.topk:
            x, k, valid = topk.rows_numpy(soft)
            result["topk_tau"] = topk.thresholds(x, k, float(feeds["temperature"][0]), valid)
        if self.hd_on_weights or self.dal_on_alphas:
            result["hard"] = hard_mask_numpy(soft)
        return result

    def feed_shapes(self, training):
        """The gradient program reads them all; the inference program what the weight
        pass's network needs."""
        shapes = {}
        if self.topk and (training or self.topk_on_weights):
            shapes.update(temperature=[1], topk_tau=[topk.layout().k.shape[0], 1], use_topk=[1])
        if self.hd_on_weights:
            shapes["use_hd"] = [1]
        if self.hd_on_weights or (training and self.dal_on_alphas):
            shapes["hard"] = [len(CELLS) * num_edges(STEPS), len(PRIMITIVES)]
        if training and self.dal_on_alphas:
            shapes["use_dal"] = [1]
        return shapes

    def op_weights(self, arch, feeds):
        """Both cells stacked; the inference program has no `use_dal`: validation measures
        the network the weights train, without the extra loss."""
        soft = F.softmax(graph.stacked(arch, "alphas", self.layout), axis=-1)
        weights = soft
        if "use_hd" in feeds:
            weights = graph.select(feeds["use_hd"], feeds["hard"], weights)
        if "use_topk" in feeds:  # top-k wins over hard, as in the authors' forward()
            factor = topk.factor(soft, feeds["temperature"], feeds["topk_tau"],
                                 self.topk_exact_gradient)
            weights = graph.select(feeds["use_topk"], soft * factor, weights)
        extra = None
        if "use_dal" in feeds:
            dal = _dal(soft, feeds["hard"])
            extra = paddle.reshape(
                feeds["use_dal"] * graph.const(self.dal_factor, dal.dtype) * dal, [])
        return graph.per_cell(weights, self.layout), extra


def _dal(soft, hard):
    """The authors' discretization_additional_loss: the mean over the normal cell's nodes
    of MSE(node's softmax [inputs, 8], its hard one-hot), as one weighted sum."""
    edges = num_edges(STEPS)
    per_row = [1.0 / (STEPS * (node + 2) * len(PRIMITIVES))
               for node in range(STEPS) for _ in range(node + 2)]
    diff = soft[:edges] - hard[:edges]
    return paddle.sum(diff * diff * graph.table(np.array(per_row)[:, None], soft.dtype))
