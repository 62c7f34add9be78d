"""Search methods: how the architecture parameters become the weight of every op on every
edge, and what they add to the loss: DARTS, DAAS and DADARTS, each as its authors' code
computes it (docs/methods.md says where that code is and what we did not copy).

The supernet takes, per cell type, a matrix W [edges, 8] (one column per PRIMITIVES op, 'none'
first): the factor of op k on edge e.  The method decides W:

  darts     W = softmax(alpha)
  daas      W = softmax(f(alpha)) x edge weights softmax(min(beta, 1)) x inputs; 7 ops
            ('none' column 0), f(t) = 2t, cubed below -1; plus the DAAS loss (entropy of
            alpha and beta, "exactly two edges" per node), weights ramped per epoch
  DADARTS flags, each composable with darts (first or second order); the authors'
  forward(x, use_topk, use_hd) chooses per pass between
            softmax     W = softmax(alpha)
            top-k       W = softmax(alpha) x TopK_edge(k=1) x TopK_node(k=2): the edge's
                        8 ops, and the node's edges x 8 ops flattened, 'none' included,
                        node 0 too
            hard        W = one-hot of the top-1 op (with 'none') of the node's 2 edges
                        whose top op is strongest
            (top-k wins where both are asked for), and DAL adds factor x the mean over the
            normal cell's nodes of MSE(node's softmax, its hard one-hot).

Which pass uses what (`MethodConfig.switches`), as the authors' architect and controller:
  unroll   (second order, w')       softmax
  arch     (L_val, first or second) top-k with --topk_on_alphas; + DAL with --dal_on_alphas
  hessian  (second order, g+ g-)    top-k with --topk_on_alphas
  weights  (weight step, validation) top-k with --topk_on_weights, else hard with
                                    --hd_on_weights from epoch --hd_start (0-based)

One gradient program serves every pass (its cost grows faster than its ops, docs/paddle.md),
so what changes between passes and epochs is fed: the switches `use_topk`, `use_hd`,
`use_dal` per pass, `temperature` and `daas_w` (the DAAS loss weights w1, w2) per epoch.
What is a selection or a root of the current alphas is computed on the host after every
alpha update and fed too (`alpha_knobs`): the hard one-hot `hard`, and `topk_tau`, the soft
top-k thresholds (the authors' bisection, in float64).  The program attaches the top-k's
gradient itself.  Plain DARTS feeds none of them: its programs are unchanged.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np

from .genotype import PRIMITIVES, num_edges, softmax

STEPS = 4
CELLS = ("normal", "reduce")
METHODS = ("darts", "daas", "dadarts")
BETA_NODES = (1, 2, 3)  # nodes with 3, 4, 5 inputs carry DAAS edge weights
BETA_INIT = {1: 0.666, 2: 0.5, 3: 0.4}
DAAS_ALPHA_FROZEN = 7  # alpha's learning rate is 0 in epochs 1..7
DAAS_LOSS_WEIGHT, DAAS_NODE_WEIGHT, DAAS_EDGES_WEIGHT = 0.1, 4.0, 0.2
# The authors' threshold search (functional.py, _find_ts): tau in [-max x - 10, -min x + 10],
# 64 halvings.
BISECTION_STEPS, TOPK_BRACKET = 64, 10.0
# The passes of a search step (Architect), each with its own choice of op weights.
UNROLL, ARCH, HESSIAN, WEIGHTS = "unroll", "arch", "hessian", "weights"


@dataclass
class MethodConfig:
    method: str = "darts"
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

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; one of {METHODS}")
        if self.method == "dadarts":  # the published recipe
            self.dal_on_alphas = self.topk_on_alphas = self.hd_on_weights = True
            self.linear_temperature_increase = True
        if self.hd_start > 0:  # the authors' controller: a start epoch switches it on
            self.hd_on_weights = True
        if self.daas and (self.dadarts_flags or self.dal_on_alphas):
            raise ValueError("DAAS does not combine with the DADARTS options")

    @property
    def daas(self):
        return self.method == "daas"

    @property
    def dadarts_flags(self):
        return self.hd_on_weights or self.topk_on_alphas or self.topk_on_weights

    @property
    def topk(self):
        return self.topk_on_alphas or self.topk_on_weights

    @property
    def primitives(self):
        return PRIMITIVES[1:] if self.daas else PRIMITIVES

    def arch_shapes(self, steps=STEPS):
        """{name: shape} of the architecture parameters, in a fixed order."""
        shapes = {f"alphas_{c}": [num_edges(steps), len(self.primitives)] for c in CELLS}
        if self.daas:
            shapes.update({f"betas_{c}": [sum(n + 2 for n in BETA_NODES)] for c in CELLS})
        return shapes

    def initial_values(self, rng):
        """alphas ~ 1e-3 N(0,1) (DAAS: 1e-4 N(0,1)); betas 0.666 / 0.5 / 0.4 + 1e-4 N(0,1)."""
        values = {}
        for name, shape in self.arch_shapes().items():
            noise = rng.standard_normal(shape)
            if name.startswith("alphas"):
                values[name] = (1e-4 if self.daas else 1e-3) * noise
            else:
                start = np.concatenate([[BETA_INIT[n]] * (n + 2) for n in BETA_NODES])
                values[name] = start + 1e-4 * noise
        return values

    # ------------------------------------------------------------------ per-epoch values

    def temperature(self, epoch, epochs):
        """Top-k temperature at 0-based `epoch`: fixed, or max * epoch / epochs (the
        authors' controller: 0 at the first epoch, where every top-k factor is 0.5)."""
        if not self.linear_temperature_increase:
            return self.topk_temperature
        return self.linear_temperature_max * epoch / epochs

    @staticmethod
    def daas_loss_weights(epoch, epochs):
        """(w1, w2) at 0-based `epoch` of `epochs`: the authors' linear and log_ of
        dimension.py, whose 50 epochs become `epochs` here (equal at 50)."""
        e = epoch + 1
        w1 = (e - 1) / (epochs - 1) if epochs > 1 else 1.0
        if e <= DAAS_ALPHA_FROZEN:
            w2 = 0.0
        else:
            w2 = math.log(e - DAAS_ALPHA_FROZEN) / math.log(epochs - DAAS_ALPHA_FROZEN - 1) \
                if epochs - DAAS_ALPHA_FROZEN - 1 > 1 else 1.0
        return w1, w2

    def alpha_lr_factor(self, epoch):
        """DAAS trains beta alone for its first epochs: alpha's learning rate is 0 there."""
        return 0.0 if self.daas and epoch < DAAS_ALPHA_FROZEN else 1.0

    def knobs(self, epoch, epochs):
        """{feed name: array} that this epoch's programs read (none for plain DARTS)."""
        knobs = {}
        if self.topk:
            knobs["temperature"] = np.array([self.temperature(epoch, epochs)])
        if self.daas:
            knobs["daas_w"] = np.array(self.daas_loss_weights(epoch, epochs))
        return knobs

    def switches(self, kind, epoch):
        """{feed name: [0.] or [1.]}: the op weights and extra loss of pass `kind` (UNROLL,
        ARCH, HESSIAN, WEIGHTS) at 0-based `epoch`; the table in this module's docstring."""
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

    @property
    def follows_alpha(self):
        """Do the programs read knobs computed from the current alphas (`alpha_knobs`)?"""
        return self.topk or self.hd_on_weights or self.dal_on_alphas

    def alpha_knobs(self, arch, knobs):
        """{feed name: array} that follow the alphas `arch` (raw values): the soft top-k
        thresholds at this epoch's `knobs["temperature"]`, the hard one-hot."""
        if not self.follows_alpha:
            return {}
        soft = np.concatenate([softmax(np.asarray(arch[f"alphas_{c}"], np.float64))
                               for c in CELLS])
        result = {}
        if self.topk:
            x, k, valid = topk_rows_numpy(soft)
            result["topk_tau"] = topk_thresholds(x, k, float(knobs["temperature"][0]), valid)
        if self.hd_on_weights or self.dal_on_alphas:
            result["hard"] = hard_mask_numpy(soft)
        return result

    def knob_shapes(self, training):
        """{feed name: shape} a program reads.  The gradient program reads them all; the
        inference program only what shapes the weight pass's network."""
        shapes = {}
        if self.topk and (training or self.topk_on_weights):
            shapes.update(temperature=[1], topk_tau=[topk_layout().k.shape[0], 1],
                          use_topk=[1])
        if self.hd_on_weights:
            shapes["use_hd"] = [1]
        if self.hd_on_weights or (training and self.dal_on_alphas):
            shapes["hard"] = [len(CELLS) * num_edges(STEPS), len(PRIMITIVES)]
        if training and self.dal_on_alphas:
            shapes["use_dal"] = [1]
        if training and self.daas:
            shapes["daas_w"] = [2]
        return shapes

    # ------------------------------------------------------------------ results

    def op_weights_numpy(self, arch):
        """{cell: normalised op weights [edges, len(primitives)]} from raw arch values."""
        if self.daas:
            return {c: softmax(strengthen(np.asarray(arch[f"alphas_{c}"], np.float64)))
                    for c in CELLS}
        return {c: softmax(arch[f"alphas_{c}"]) for c in CELLS}

    def betas_numpy(self, arch, normalised=True):
        """{cell: [the betas of nodes 1, 2, 3]} (DAAS), else {}: softmax(min(beta, 1)), the
        edge weights the cells use, or the raw betas (normalised=False)."""
        if not self.daas:
            return {}
        result = {}
        for c in CELLS:
            parts = np.split(np.asarray(arch[f"betas_{c}"], np.float64),
                             np.cumsum([n + 2 for n in BETA_NODES])[:-1])
            result[c] = [softmax(np.minimum(p, 1.0)) if normalised else p for p in parts]
        return result

    def genotype(self, arch):
        """The derived cells; DAAS keeps each node's two highest raw betas, as the authors'
        genotype() does (their softmax(min(beta, 1)) would tie every beta above 1)."""
        from .genotype import genotype_from_weights

        weights, betas = self.op_weights_numpy(arch), self.betas_numpy(arch, normalised=False)
        return genotype_from_weights(weights["normal"], weights["reduce"], self.primitives,
                                     betas.get("normal"), betas.get("reduce"))


def hard_mask_numpy(soft):
    """The authors' hard_discretization (search_cnn.py) of both cells' softmax weights stacked
    [2 * edges, 8]: per node, a one-hot on the top-1 op ('none' included) of the 2 edges
    whose top-1 weight is largest."""
    mask, start = np.zeros_like(soft), 0
    for _ in CELLS:
        for node in range(STEPS):
            rows = soft[start:start + node + 2]
            keep = np.argsort(-rows.max(axis=1), kind="stable")[:2]
            mask[start + keep, rows[keep].argmax(axis=1)] = 1.0
            start += node + 2
    return mask


@dataclass(frozen=True)
class TopkLayout:
    """The rows of one soft top-k over both cells' softmax weights stacked [2 * edges, 8] and
    flattened (entry e * 8 + k; one zero slot appended for padding):
    an edge row per edge (k = 1 over its 8 ops), then a node row per node of each cell (k = 2
    over its edges x 8 ops flattened), all padded to the widest node.
    index [rows, width]: the entries of each row; k [rows, 1]; valid [rows, width];
    edge_at, node_at [2 * edges * 8]: where an entry's edge and node factors are in the
    rows flattened."""
    index: np.ndarray
    k: np.ndarray
    valid: np.ndarray
    edge_at: np.ndarray
    node_at: np.ndarray


@functools.lru_cache(maxsize=None)
def topk_layout(steps=STEPS):
    n_ops, total = len(PRIMITIVES), len(CELLS) * num_edges(steps)
    width = (steps + 1) * n_ops  # the last node's inputs x ops
    rows = [range(e * n_ops, (e + 1) * n_ops) for e in range(total)]
    first = np.cumsum([0] + [n + 2 for n in range(steps)] * len(CELLS))[:-1]
    rows += [range(f * n_ops, (f + node + 2) * n_ops)
             for f, node in zip(first, list(range(steps)) * len(CELLS))]
    index = np.full((len(rows), width), total * n_ops)
    for i, r in enumerate(rows):
        index[i, :len(r)] = r
    valid = (index < total * n_ops).astype(np.float64)
    place = np.arange(index.size).reshape(index.shape)  # position in the rows flattened
    edge_at, node_at = place[:total, :n_ops].reshape(-1), np.empty(total * n_ops, np.int64)
    node_at[index[total:][valid[total:] > 0]] = place[total:][valid[total:] > 0]
    k = np.array([[1.0]] * total + [[2.0]] * (len(rows) - total))
    return TopkLayout(index, k, valid, edge_at, node_at)


def topk_rows_numpy(soft):
    """(x, k, valid) of the soft top-k rows (`topk_layout`) from both cells' softmax
    weights stacked [2 * edges, 8]: the host's copy of what `_topk_factor` ranks."""
    layout = topk_layout()
    return np.append(soft.reshape(-1), 0.0)[layout.index], layout.k, layout.valid


def topk_thresholds(x, k, t, valid):
    """tau per row such that sum_i valid_i sigmoid((x_i + tau) t) = k: the authors' bisection
    (_find_ts), in float64.  At t = 0 no tau solves it and every factor is 0.5, as theirs.
    x, valid: [G, n]; k: [G, 1] -> [G, 1]."""
    from scipy.special import expit

    x, valid = np.asarray(x, np.float64), np.asarray(valid) > 0
    lo = -np.where(valid, x, -np.inf).max(axis=1, keepdims=True) - TOPK_BRACKET
    hi = -np.where(valid, x, np.inf).min(axis=1, keepdims=True) + TOPK_BRACKET
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        below = (expit((x + mid) * t) * valid).sum(axis=1, keepdims=True) < k
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


def strengthen(alpha):
    """DAAS's f: x = 2 alpha; x^3 where x < -1 (weak ops fall away faster), else x."""
    x = 2 * alpha
    return np.where(x < -1, x ** 3, x)


# ---------------------------------------------------------------------- program side

def declare_knobs(method, dtype, training):
    """The feed variables a program reads (MethodConfig.knob_shapes)."""
    import paddle

    return {n: paddle.static.data(n, shape, dtype)
            for n, shape in method.knob_shapes(training).items()}


def materialize_arch(method, shared):
    """The architecture parameters in the program being built, {name: variable}."""
    return {name: shared.parameter(name, shape) for name, shape in method.arch_shapes().items()}


def arch_terms(method, arch, knobs):
    """({cell: W [edges, 8]}, extra loss scalar or None) for the pass the fed switches
    describe.  The inference program has no `use_dal`: validation measures the network the
    weights train, without the extra loss."""
    import paddle
    import paddle.nn.functional as F

    if method.daas:
        return _daas_terms(arch, knobs.get("daas_w"))
    if not knobs:
        return {c: F.softmax(arch[f"alphas_{c}"], axis=-1) for c in CELLS}, None
    soft = F.softmax(paddle.concat([arch[f"alphas_{c}"] for c in CELLS]), axis=-1)
    weights = soft
    if "use_hd" in knobs:
        weights = _select(knobs["use_hd"], knobs["hard"], weights)
    if "use_topk" in knobs:  # top-k wins over hard, as in the authors' forward()
        factor = _topk_factor(soft, knobs["temperature"], knobs["topk_tau"],
                              method.topk_exact_gradient)
        weights = _select(knobs["use_topk"], soft * factor, weights)
    extra = None
    if "use_dal" in knobs:
        dal = _dal(soft, knobs["hard"])
        extra = paddle.reshape(knobs["use_dal"] * _const(method.dal_factor, dal.dtype) * dal, [])
    return _per_cell(weights), extra


def _per_cell(stacked):
    """{cell: its rows} of both cells' rows stacked."""
    import paddle

    return dict(zip(CELLS, paddle.split(stacked, len(CELLS))))


def _select(gate, when_on, when_off):
    """gate (a fed [1] of 0 or 1) ? when_on : when_off, exactly (no arithmetic blend)."""
    import paddle

    return paddle.where(paddle.expand(gate > 0.5, when_on.shape), when_on, when_off)


def _dal(soft, hard):
    """The authors' discretization_additional_loss: the mean over the normal cell's nodes
    of MSE(node's softmax [inputs, 8], its hard one-hot), as one weighted sum."""
    import paddle

    edges = num_edges(STEPS)
    per_row = [1.0 / (STEPS * (node + 2) * len(PRIMITIVES))
               for node in range(STEPS) for _ in range(node + 2)]
    diff = soft[:edges] - hard[:edges]
    return paddle.sum(diff * diff * _table(np.array(per_row)[:, None], soft.dtype))


def _table(values, dtype):
    """A constant array in the program's float type (float64 in the gradient tests)."""
    import paddle

    return paddle.assign(np.asarray(values, "float64" if dtype == paddle.float64 else "float32"))


def _index(array):
    import paddle

    return paddle.assign(np.asarray(array, np.int64).reshape(-1))


def soft_topk(x, tau, t, valid, exact=False):
    """TopK(x, k, t) = sigmoid((x + tau) t) per row, the fed tau making each row sum to k
    (`topk_thresholds`).  x, valid: [G, n] (valid 0 for padding); tau: [G, 1]; t: [1].

    Its gradient is the authors' TopK.backward (functional.py): J = diag(v) - v v^T / sum(v),
    v = sigmoid'((x + tau) t), which leaves out the chain rule's factor t; exact=True keeps
    it (t J, the implicit function's gradient).  Attached as v (r - stop_gradient(r)) with
    r = x - sum(v x) / sum(v): zero in value, J in the backward pass.
    """
    import paddle
    import paddle.nn.functional as F

    p = F.sigmoid((x.detach() + tau) * t) * valid
    v = p * (1 - p)  # 0 on the padding
    s = paddle.maximum(paddle.sum(v, axis=1, keepdim=True), paddle.full([1], 1e-30, x.dtype))
    r = x - paddle.sum(v * x, axis=1, keepdim=True) / s
    jvp = v * (r - r.detach())
    return p + (t * jvp if exact else jvp)


def _topk_factor(soft, t, tau, exact):
    """TopK_edge(k=1) x TopK_node(k=2) of both cells' softmax weights stacked [2 * edges, 8],
    as a factor of the same shape: all rows (`topk_layout`) in one soft top-k."""
    import paddle

    layout = topk_layout()
    flat = paddle.concat([paddle.reshape(soft, [-1]), paddle.zeros([1], soft.dtype)])
    x = paddle.reshape(paddle.gather(flat, _index(layout.index)), list(layout.index.shape))
    mask = paddle.reshape(soft_topk(x, tau, t, _table(layout.valid, soft.dtype), exact), [-1])
    edge = paddle.gather(mask, _index(layout.edge_at))
    node = paddle.gather(mask, _index(layout.node_at))
    return paddle.reshape(edge * node, soft.shape)


def _const(value, dtype):
    """A tensor constant: a Python float in an op would be stored as a float32 attribute."""
    import paddle

    return paddle.full([1], value, dtype)


def _beta_tables():
    """Index tables for per-node work on both cells' betas stacked ([24]: nodes 1..3 of each
    cell, one beta per input edge): index [6 nodes, 5]: each node's betas, padded with 24
    (a slot the caller appends); position [28 edges]: where an edge's weight lands in that
    table flattened, or 30 (a slot of ones after it) for node 0's two edges."""
    width, edges = max(BETA_NODES) + 2, num_edges(STEPS)
    n_betas = len(CELLS) * sum(n + 2 for n in BETA_NODES)
    index, position = [], np.full(len(CELLS) * edges, len(CELLS) * len(BETA_NODES) * width)
    first_beta = 0
    for c in range(len(CELLS)):
        for node in BETA_NODES:
            first_edge = c * edges + sum(n + 2 for n in range(node))
            position[first_edge:first_edge + node + 2] = len(index) * width + np.arange(node + 2)
            index.append(list(range(first_beta, first_beta + node + 2))
                         + [n_betas] * (width - node - 2))
            first_beta += node + 2
    return np.array(index), position


def _daas_terms(arch, w):
    """DAAS for both cells at once, per node on a padded [nodes, 5] table of betas:
    ({cell: W [edges, 8]}, the DAAS loss; None without the loss weights `w`).

    W: 'none' column 0, ops softmax(f(alpha)), node n's edges scaled by
    softmax(min(beta, 1)) * inputs.  Loss: 0.1 w1 (w2 H(alpha) + 4 sum_nodes
    [0.2 (sum_{beta>0} min(beta, 1) - 2)^2 + H(beta)]), H(alpha) summed over every edge of
    both cells, as the authors' MinEntropyLoss.py."""
    import paddle
    import paddle.nn.functional as F

    alpha = paddle.concat([arch[f"alphas_{c}"] for c in CELLS])
    beta = paddle.concat([arch[f"betas_{c}"] for c in CELLS])
    dtype, n_edges = alpha.dtype, alpha.shape[0]
    x = 2 * alpha
    op_weights = F.softmax(paddle.where(x < -1, x * x * x, x), axis=-1)
    index, position = _beta_tables()

    def per_node(values, pad):  # [24] -> [6, 5], pads set to `pad`
        padded = paddle.concat([values, paddle.full([1], pad, dtype)])
        return paddle.reshape(paddle.gather(padded, _index(index)), list(index.shape))

    edge_share = F.softmax(per_node(paddle.minimum(beta, paddle.ones_like(beta)), -1e30), axis=1)
    inputs = _table([[n + 2.0] for n in BETA_NODES] * len(CELLS), dtype)
    scaled = paddle.concat([paddle.reshape(edge_share * inputs, [-1]),
                            paddle.ones([1], dtype)])
    edge_factor = paddle.unsqueeze(paddle.gather(scaled, _index(position)), -1)
    weights = paddle.concat([paddle.zeros([n_edges, 1], dtype), op_weights], axis=1) * edge_factor
    if w is None:
        return _per_cell(weights), None
    h_alpha = paddle.sum(_entropy(op_weights))  # summed over edges (MinEntropyLoss.py)
    two_edges = paddle.sum(per_node(paddle.clip(beta, min=0.0, max=1.0), 0.0), axis=1) - 2
    nodes = paddle.sum(_const(DAAS_EDGES_WEIGHT, dtype) * two_edges * two_edges
                       + _entropy(edge_share))
    term = _const(DAAS_LOSS_WEIGHT, dtype) * w[0] * (w[1] * h_alpha + DAAS_NODE_WEIGHT * nodes)
    return _per_cell(weights), paddle.reshape(term, [])


def _entropy(p, axis=-1):
    """Entropy of each distribution along `axis`; padding entries (p = 0) add nothing."""
    import paddle

    tiny = paddle.full([1], 1e-30, p.dtype)
    return -paddle.sum(p * paddle.log(paddle.maximum(p, tiny)), axis=axis)
