"""Search methods: how the architecture parameters become the weight of every op on every
edge, and what they add to the loss (DARTS, and the discretization-aware DAAS and DADARTS,
REFERENCE.md section 9).

The supernet takes, per cell type, a matrix W [edges, 8] (one column per PRIMITIVES op, 'none'
first): the factor of op k on edge e.  The method decides W:

  darts     W = softmax(alpha)
  daas      W = softmax(f(alpha)) x beta edge weights; 7 ops ('none' column 0),
            f(t) = 2t, cubed below -1, sharpens the op choice; plus the DAAS loss (entropy
            of alpha and beta, "exactly two edges" per node), weights ramped per epoch
  DADARTS flags, each composable with darts, first or second order:
    --hd_on_weights    weight pass and validation: W = one-hot of the genotype the
                       alphas derive now (top-1 op per edge, top-2 edges per node)
    --topk_on_alphas   architect passes: W = softmax(alpha) x TopK_edge(k=1) x TopK_node(k=2)
    --topk_on_weights  weight pass: the same
    --dal_on_alphas    architect loss + factor x MSE(softmax(alpha), its one-hot)

One gradient program serves every pass (its cost grows faster than its ops, PADDLE_NOTES.md),
so what changes between passes and epochs is fed: `phase` (1 in the architect's passes, 0 in
the weight pass), `temperature`, `hd` (hard discretization on from --hd_start) and `daas_w`
(the DAAS loss weights w1, w2).  What is a selection or a root of the current alphas is
computed on the host after every alpha update and fed too (`alpha_knobs`): the one-hot
genotype mask `hard`, and `topk_u`, the soft top-k thresholds (a bisection in float64; in the
program it would be ~250 ops).  The program attaches the thresholds' implicit gradient
itself.  Plain DARTS feeds none of them: its programs are unchanged.

Our reading where section 9 leaves a choice (tests pin each one):
- TopK_edge ranks an edge's 7 non-'none' ops (the 'none' column passes unchanged: 'none' adds
  zero whatever its weight); TopK_node ranks a node's incoming edges by their strongest
  non-'none' softmax weight, as the genotype does; nodes with two inputs keep both.
- In second order, the architect's passes on training batches (w', g+, g-) use the
  architect's W as well, so the Hessian term is that of the loss the architect sees.
- DAAS H(alpha) is the mean over edges of the entropy of softmax(f(alpha)); H(beta) the
  entropy of softmax(min(beta, 1)) of a node; both summed over the normal and reduce cell.
  w1(e) = (e - 1) / (E - 1) and w2(e) = log(e - 7) / log(E - 8) from epoch 8 (E = 50 gives
  the published (e - 1) / 49 and log base 42).
"""

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
BISECTION_STEPS = 64  # float64: the bracket (spread * t + 60) shrinks below rounding
_BRACKET = 30.0  # sigmoid(-30) ~ 1e-13: beyond this margin a row sums to ~0 or to ~n


@dataclass
class MethodConfig:
    method: str = "darts"
    hd_on_weights: bool = False
    hd_start: int = 1  # first epoch (1-based, as logged) with hard discretization
    topk_on_alphas: bool = False
    topk_on_weights: bool = False
    topk_temperature: float = 1.0
    linear_temperature_increase: bool = False
    linear_temperature_max: float = 200.0
    dal_on_alphas: bool = False
    dal_factor: float = 1.0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; one of {METHODS}")
        if self.method == "dadarts":  # the published recipe
            self.dal_on_alphas = self.topk_on_alphas = self.hd_on_weights = True
            self.linear_temperature_increase = True
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
    def phased(self):
        """Do the architect's passes and the weight pass compute different things?"""
        return (self.hd_on_weights or self.dal_on_alphas
                or self.topk_on_alphas != self.topk_on_weights)

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
        """Top-k temperature at 0-based `epoch`: fixed, or linear up to the maximum."""
        if not self.linear_temperature_increase or epochs <= 1:
            return self.topk_temperature
        return self.topk_temperature + (self.linear_temperature_max - self.topk_temperature) \
            * epoch / (epochs - 1)

    @staticmethod
    def daas_loss_weights(epoch, epochs):
        """(w1, w2) at 0-based `epoch` of `epochs`."""
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
        if self.hd_on_weights:
            knobs["hd"] = np.array([1.0 if epoch + 1 >= self.hd_start else 0.0])
        if self.daas:
            knobs["daas_w"] = np.array(self.daas_loss_weights(epoch, epochs))
        return knobs

    @property
    def follows_alpha(self):
        """Do the programs read knobs computed from the current alphas (`alpha_knobs`)?"""
        return self.topk or self.hd_on_weights or self.dal_on_alphas

    def alpha_knobs(self, arch, knobs):
        """{feed name: array} that follow the alphas `arch` (raw values): the soft top-k
        thresholds at this epoch's `knobs["temperature"]`, the one-hot genotype mask."""
        if not self.follows_alpha:
            return {}
        soft = np.concatenate([softmax(np.asarray(arch[f"alphas_{c}"], np.float64))
                               for c in CELLS])
        result = {}
        if self.topk:
            x, k, valid = topk_rows_numpy(soft)
            result["topk_u"] = topk_offsets(x, k, float(knobs["temperature"][0]), valid)
        if self.hd_on_weights or self.dal_on_alphas:
            result["hard"] = hard_mask_numpy(soft)
        return result

    def knob_shapes(self, training):
        """{feed name: shape} a program reads.  The gradient program reads them all (and
        `phase` where the passes differ); the inference program only what shapes the
        weight pass's network."""
        shapes = {}
        if self.topk and (training or self.topk_on_weights):
            shapes.update(temperature=[1], topk_u=[_topk_layout()[2].shape[0], 1])
        if self.hd_on_weights:
            shapes["hd"] = [1]
        if self.hd_on_weights or (training and self.dal_on_alphas):
            shapes["hard"] = [len(CELLS) * num_edges(STEPS), len(PRIMITIVES)]
        if training and self.daas:
            shapes["daas_w"] = [2]
        if training and self.phased:
            shapes["phase"] = [1]
        return shapes

    # ------------------------------------------------------------------ results

    def op_weights_numpy(self, arch):
        """{cell: normalised op weights [edges, len(primitives)]} from raw arch values."""
        if self.daas:
            return {c: softmax(strengthen(np.asarray(arch[f"alphas_{c}"], np.float64)))
                    for c in CELLS}
        return {c: softmax(arch[f"alphas_{c}"]) for c in CELLS}

    def betas_numpy(self, arch):
        """{cell: [softmax(min(beta, 1)) of nodes 1, 2, 3]} (DAAS), else {}."""
        if not self.daas:
            return {}
        result = {}
        for c in CELLS:
            parts = np.split(np.minimum(np.asarray(arch[f"betas_{c}"], np.float64), 1.0),
                             np.cumsum([n + 2 for n in BETA_NODES])[:-1])
            result[c] = [softmax(p) for p in parts]
        return result

    def genotype(self, arch):
        from .genotype import genotype_from_weights

        weights, betas = self.op_weights_numpy(arch), self.betas_numpy(arch)
        return genotype_from_weights(weights["normal"], weights["reduce"], self.primitives,
                                     betas.get("normal"), betas.get("reduce"))


def hard_mask_numpy(soft):
    """One-hot [2 * edges, 8] (both cells stacked) of the genotype that the softmax weights
    `soft` derive: the best non-'none' op on the 2 strongest edges of each node."""
    from .genotype import derive_cell

    mask = np.zeros_like(soft)
    first_edge = np.cumsum([0] + [n + 2 for n in range(STEPS)])  # of each node in a cell
    for cell, weights in enumerate(np.split(soft, len(CELLS))):
        for i, (op, j) in enumerate(derive_cell(weights)):  # two (op, input) per node
            mask[cell * len(weights) + first_edge[i // 2] + j, PRIMITIVES.index(op)] = 1.0
    return mask


def topk_offsets(x, k, t, valid):
    """u per row such that sum_i valid_i sigmoid(x_i t + u) = k: the soft top-k threshold
    (times t), by bisection in float64.  x, valid: [G, n]; k: [G, 1] -> [G, 1]."""
    from scipy.special import expit

    xt = np.where(valid > 0, np.asarray(x, np.float64) * t, -np.inf)  # pads never count
    lo = -xt.max(axis=1, keepdims=True) - _BRACKET
    hi = -np.where(valid > 0, xt, np.inf).min(axis=1, keepdims=True) + _BRACKET
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        below = expit(xt + mid).sum(axis=1, keepdims=True) < k
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
    """({cell: W [edges, 8]}, extra loss scalar or None) for the pass the knobs describe.

    Without a `phase` knob (the inference program) this is the weight pass without the
    extra loss: validation accuracy is measured on the network the weights train.
    """
    import paddle
    import paddle.nn.functional as F

    if method.daas:
        return _daas_terms(arch, knobs.get("daas_w"))
    soft = {c: F.softmax(arch[f"alphas_{c}"], axis=-1) for c in CELLS}
    hard = _unstack(knobs["hard"]) if "hard" in knobs else None
    masks = _topk_masks(soft, knobs["temperature"], knobs["topk_u"]) if "topk_u" in knobs \
        else None
    weights = {}
    for c in CELLS:
        topk = soft[c] * masks[c] if masks else None
        for_arch = topk if method.topk_on_alphas else soft[c]
        for_weights = topk if method.topk_on_weights else soft[c]
        if method.hd_on_weights:
            for_weights = _select(knobs["hd"], hard[c], for_weights)
        weights[c] = for_weights
        if "phase" in knobs and for_arch is not for_weights:
            weights[c] = _select(knobs["phase"], for_arch, for_weights)
    extra = None
    if method.dal_on_alphas and "phase" in knobs:
        dal = sum(F.mse_loss(soft[c], hard[c]) for c in CELLS)
        extra = paddle.reshape(knobs["phase"] * _const(method.dal_factor, dal.dtype) * dal, [])
    return weights, extra


def _select(gate, when_on, when_off):
    """gate (a fed [1] of 0 or 1) ? when_on : when_off, exactly (no arithmetic blend)."""
    import paddle

    return paddle.where(paddle.expand(gate > 0.5, when_on.shape), when_on, when_off)


def _node_tables(width, first_node=1, steps=STEPS):
    """Index tables for per-node work on both cells' edges stacked ([2 * edges] rows).

    -> (index [nodes, width]: the rows of each node's incoming edges, padded with the index
    2 * edges (a slot the caller appends); position [2 * edges]: where an edge lands in
    that table flattened (row * width + column), or the slot nodes * width after it for
    the edges of nodes before first_node)."""
    edges = sum(n + 2 for n in range(steps))
    index, position = [], np.full(2 * edges, -1)
    for c in range(len(CELLS)):
        start = c * edges
        for node in range(steps):
            rows = list(range(start, start + node + 2))
            start += node + 2
            if node < first_node:
                continue
            for col, r in enumerate(rows):
                position[r] = len(index) * width + col
            index.append(rows + [2 * edges] * (width - len(rows)))
    position[position < 0] = len(index) * width
    return np.array(index), position


def _stack(soft):
    import paddle

    return paddle.concat([soft[c] for c in CELLS])


def _unstack(stacked):
    import paddle

    return dict(zip(CELLS, paddle.split(stacked, len(CELLS))))


def _index(array):
    import paddle

    return paddle.assign(np.asarray(array, np.int64).reshape(-1))


def soft_topk(x, u, t, valid):
    """TopK(x, k, t) = sigmoid(x t + u) per row, the fed u = tau t making each row sum to k
    (`topk_offsets`).  x, valid: [G, n] (valid 0 for padding); u: [G, 1]; t: [1].

    u's gradient is the implicit function's, du/dx_j = -t sigmoid'_j / sum_i sigmoid'_i
    (from sum_i sigmoid(x_i t + u) = k), attached as g - stop_gradient(g) with
    g = -sum_i sigmoid(x_i t + u) / stop_gradient(sum_i sigmoid'_i): zero in value, that
    gradient in the backward pass.
    """
    import paddle
    import paddle.nn.functional as F

    s = F.sigmoid(x * t + u) * valid
    slope = paddle.maximum(paddle.sum(s * (1 - s), axis=1, keepdim=True),
                           paddle.full([1], 1e-30, x.dtype)).detach()
    g = -paddle.sum(s, axis=1, keepdim=True) / slope
    return F.sigmoid(x * t + (u + (g - g.detach()))) * valid


def _topk_layout(n_edges=len(CELLS) * num_edges(STEPS), n_ops=len(PRIMITIVES) - 1):
    """The rows of one soft top-k over both cells: the edges (k=1 over their non-'none' ops),
    then nodes 1..3 of each cell (k=2 over their 3..5 edges' strongest op, padded to n_ops).
    -> (index [nodes, n_ops]: a node row's edges, padded with n_edges; position [edges]:
    where an edge's node factor lands in the node rows flattened (node 0: a slot of ones);
    k [rows, 1]; valid [rows, n_ops])."""
    index, position = _node_tables(width=n_ops)
    k = np.concatenate([np.ones((n_edges, 1)), np.full((len(index), 1), 2.0)])
    valid = np.concatenate([np.ones((n_edges, n_ops)), (index < n_edges).astype(float)])
    return index, position, k, valid


def topk_rows_numpy(soft):
    """(x, k, valid) of the soft top-k rows (`_topk_layout`) from both cells' softmax
    weights stacked [2 * edges, 8]: the host's copy of what `_topk_masks` ranks."""
    index, _, k, valid = _topk_layout()
    usable = soft[:, 1:]
    strength = np.append(usable.max(axis=1), 0.0)
    return np.concatenate([usable, strength[index]]), k, valid


def _topk_masks(soft, t, u):
    """{cell: TopK_edge(k=1) x TopK_node(k=2) as a [edges, 8] factor}, both cells' rows in
    one soft top-k.  Node 0 keeps both its inputs (factor 1); so does 'none'."""
    import paddle

    stacked = _stack(soft)
    dtype, n_edges = stacked.dtype, stacked.shape[0]
    index, position, _, valid = _topk_layout()
    usable = stacked[:, 1:]
    strength = paddle.concat([paddle.max(usable, axis=-1), paddle.zeros([1], dtype)])
    node_rows = paddle.reshape(paddle.gather(strength, _index(index)), list(index.shape))
    valid = paddle.cast(paddle.assign(valid.astype(np.float32)), dtype)
    mask = soft_topk(paddle.concat([usable, node_rows]), u, t, valid)
    node_mask = paddle.concat([paddle.reshape(mask[n_edges:], [-1]), paddle.ones([1], dtype)])
    edge_factor = paddle.unsqueeze(paddle.gather(node_mask, _index(position)), -1)
    ones = paddle.ones([n_edges, 1], dtype)
    return _unstack(paddle.concat([ones, mask[:n_edges]], axis=1) * edge_factor)


def _const(value, dtype):
    """A tensor constant: a Python float in an op would be stored as a float32 attribute."""
    import paddle

    return paddle.full([1], value, dtype)


def _beta_tables():
    """_node_tables over both cells' betas stacked ([24]; nodes 1..3 have one beta per
    input edge, node 0 none): index [6 nodes, 5] of each node's betas, padded with 24;
    position [28 edges]: where an edge's weight lands in that table flattened, or 30 (a
    slot of ones) for node 0's two edges."""
    index, position = _node_tables(width=max(BETA_NODES) + 2)
    edges = num_edges(STEPS)
    has_beta = np.arange(len(CELLS) * edges) % edges >= 2  # a cell's edges 0, 1: node 0
    beta_of_edge = np.append(np.where(has_beta, np.cumsum(has_beta) - 1, -1), has_beta.sum())
    return beta_of_edge[index], position


def _daas_terms(arch, w):
    """DAAS for both cells at once, per node on a padded [nodes, 5] table of betas:
    ({cell: W [edges, 8]}, the DAAS loss; None without the loss weights `w`).

    W: 'none' column 0, ops softmax(f(alpha)), node n's edges scaled by
    softmax(min(beta, 1)) * inputs.  Loss: 0.1 w1 (w2 H(alpha) + 4 sum_nodes
    [0.2 (sum_{beta>0} min(beta, 1) - 2)^2 + H(beta)]), H(alpha) the mean over a cell's
    edges, summed over the cells."""
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
    inputs = paddle.assign(np.array([[n + 2.0] for n in BETA_NODES] * len(CELLS)).astype(np.float32))
    scaled = paddle.concat([paddle.reshape(edge_share * paddle.cast(inputs, dtype), [-1]),
                            paddle.ones([1], dtype)])
    edge_factor = paddle.unsqueeze(paddle.gather(scaled, _index(position)), -1)
    weights = paddle.concat([paddle.zeros([n_edges, 1], dtype), op_weights], axis=1) * edge_factor
    if w is None:
        return _unstack(weights), None
    h_alpha = paddle.sum(_entropy(op_weights)) / _const(n_edges // len(CELLS), dtype)
    two_edges = paddle.sum(per_node(paddle.clip(beta, min=0.0, max=1.0), 0.0), axis=1) - 2
    nodes = paddle.sum(_const(DAAS_EDGES_WEIGHT, dtype) * two_edges * two_edges
                       + _entropy(edge_share))
    term = _const(DAAS_LOSS_WEIGHT, dtype) * w[0] * (w[1] * h_alpha + DAAS_NODE_WEIGHT * nodes)
    return _unstack(weights), paddle.reshape(term, [])


def _entropy(p, axis=-1):
    """Entropy of each distribution along `axis`; padding entries (p = 0) add nothing."""
    import paddle

    tiny = paddle.full([1], 1e-30, p.dtype)
    return -paddle.sum(p * paddle.log(paddle.maximum(p, tiny)), axis=axis)
