"""Builders of the search Programs.  Each is built once and returns a `Prog` record.

Every pass of the search, whatever it is for, runs the same gradient program:

  grad     batch, bn_update -> loss, accuracy;  G_w = dL/dw,  G_alpha = dL/dalpha
           (bn_update = 1 stores the BN running statistics of this pass, 0 leaves them;
           methods other than plain DARTS also read their knobs: methods.py)

and tiny programs move vectors around it:

  weight_step     w <- Momentum(w, clip_5(G_w)) with weight decay, cosine LR
  alpha_step      alpha <- Adam(alpha, G_alpha)   (every architecture parameter: alphas,
                  and DAAS's betas)
  unroll          w_backup <- w;  w <- w - eta * (mu * m + G_w + lambda * w)      (w')
  perturb_plus    d_alpha <- G_alpha;  v <- G_w;  R <- 0.01 / ||v||;  w <- w_backup + R v
  perturb_minus   g_plus <- G_alpha;  w <- w_backup - R v
  combine         G_alpha <- d_alpha - eta * (g_plus - G_alpha) / (2 R);  w <- w_backup
  evaluate        batch -> loss, accuracy with BN in inference mode

Fetch lists are fixed per program (changing one re-prepares the program, PADDLE_NOTES.md).
"""

from dataclasses import dataclass, field
from typing import Dict, List

from .methods import MethodConfig, arch_terms, declare_knobs, materialize_arch
from .nets.ops import Context
from .params import SharedVars
from .supernet import SearchNetwork


@dataclass
class Prog:
    program: object
    feeds: List[str] = field(default_factory=list)
    fetch: List[object] = field(default_factory=list)


@dataclass
class SearchConfig:
    C: int = 16
    layers: int = 8
    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32
    epochs: int = 50
    learning_rate: float = 0.025
    learning_rate_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_learning_rate: float = 3e-4
    arch_weight_decay: float = 1e-3
    unrolled: bool = False
    hessian_r: float = 0.01  # R = hessian_r / ||v|| (the paper's epsilon, 0.01)
    dtype: str = "float32"  # float64 for gradient checks in tests
    method: MethodConfig = field(default_factory=MethodConfig)

    @property
    def arch_names(self):
        return list(self.method.arch_shapes())


@dataclass
class SearchPrograms:
    config: SearchConfig
    network: SearchNetwork
    startup: object
    shared: SharedVars
    lr_scheduler: object  # the weights' cosine schedule: lr_scheduler() is eta
    progs: Dict[str, Prog]
    alpha_scheduler: object = None  # DAAS: alpha's learning rate, 0 in the first epochs

    def __getitem__(self, name):
        return self.progs[name]

    def state_names(self):
        """{checkpoint key: scope name} of everything a search's state consists of:
        weights, BN statistics, architecture parameters, momentum buffers, Adam moments and
        step powers."""
        keys = [*self.network.params.banks, "bn.mean", "bn.var", *self.config.arch_names]
        keys += [k for k in self.shared.names() if k.startswith(("momentum_", "adam_"))]
        return {k: self.shared.scope_name(k) for k in keys}

    def initial_values(self, rng):
        """{variable: array} to start a search from: weights, BN statistics, alphas (betas)."""
        values = self.network.params.initial_values(rng)
        values["bn.mean"], values["bn.var"] = self.network.stats.initial_values()
        values.update(self.config.method.initial_values(rng))
        return values

    def next_epoch(self):
        """Advance the per-epoch learning-rate schedules."""
        self.lr_scheduler.step()
        if self.alpha_scheduler is not None:
            self.alpha_scheduler.step()


def _guard(program, startup):
    import paddle

    return paddle.static.program_guard(program, startup)


def _new_program():
    import paddle

    return paddle.static.Program()


def _data(name, shape, dtype):
    import paddle

    return paddle.static.data(name, shape, dtype)


def _forward(net, shared, cfg, training):
    """x, y (, knobs) -> (weight banks, arch parameters, feed names, loss, top-1 accuracy).

    The training forward is the gradient program's, which serves the architect's passes
    and the weight pass alike (the `phase` knob tells them apart where the method cares);
    the loss is the cross-entropy plus what the method adds.  The inference forward
    (validation accuracy) is the weight pass's network with the plain cross-entropy.
    """
    import paddle
    import paddle.nn.functional as F

    x = _data("x", [-1, cfg.in_channels, cfg.image_size, cfg.image_size], cfg.dtype)
    y = _data("y", [-1], "int64")
    knobs = declare_knobs(cfg.method, cfg.dtype, training)
    banks = net.materialize(shared)
    arch = materialize_arch(cfg.method, shared)
    weights, extra = arch_terms(cfg.method, arch, knobs)
    logits = net(x, weights["normal"], weights["reduce"], Context(training=training))
    loss = F.cross_entropy(logits, paddle.unsqueeze(y, 1))
    if extra is not None and training:
        loss = loss + extra
    acc = paddle.metric.accuracy(logits, paddle.unsqueeze(y, 1), k=1)
    return banks, list(arch.values()), ["x", "y", *knobs], loss, acc


def build_gradient_program(net, shared, cfg, startup):
    """The one forward/backward program: G_<var> <- dL/d<var> for every bank and alpha."""
    import paddle

    prog = _new_program()
    with _guard(prog, startup):
        banks, arch, feeds, loss, acc = _forward(net, shared, cfg, training=True)
        net.stats.write_back(_data("bn_update", [1], cfg.dtype))
        variables = banks + arch
        for var, g in zip(variables, paddle.static.gradients([loss], variables)):
            if g is None:  # an alpha no cell uses (e.g. no normal cell in a 2-layer net)
                g = paddle.zeros(var.shape, cfg.dtype)
            paddle.assign(g, output=shared.buffer("G_" + var.name, var.shape))
    return Prog(prog, feeds + ["bn_update"], [loss, acc])


def build_eval_program(net, shared, cfg, startup):
    prog = _new_program()
    with _guard(prog, startup):
        _, _, feeds, loss, acc = _forward(net, shared, cfg, training=False)
    return Prog(prog, feeds, [loss, acc])


def weight_optimizer(scheduler, banks, cfg):
    """The original's weight optimizer: SGD with momentum and L2 weight decay, gradients
    clipped to a global norm first (clip_grad_norm_ then step()).  `parameters=` is
    required: without it Paddle 3.3 fails in PIR mode creating the learning-rate variable."""
    import paddle

    return paddle.optimizer.Momentum(
        scheduler, momentum=cfg.momentum, parameters=banks,
        weight_decay=paddle.regularizer.L2Decay(cfg.weight_decay),
        grad_clip=paddle.nn.ClipGradByGlobalNorm(cfg.grad_clip))


def build_weight_step(net, shared, cfg, startup):
    """Momentum SGD on all weight banks from G_w, as the original's optimizer.step()."""
    import paddle

    prog = _new_program()
    with _guard(prog, startup):
        banks = [shared.parameter(name, None) for name in net.params.banks]
        scheduler = paddle.optimizer.lr.CosineAnnealingDecay(
            cfg.learning_rate, T_max=cfg.epochs, eta_min=cfg.learning_rate_min)
        opt = weight_optimizer(scheduler, banks, cfg)
        opt.apply_gradients([(w, shared.buffer("G_" + w.name, None)) for w in banks])
    for name, velocity in opt._accumulators["velocity"].items():
        shared.alias("momentum_" + name, velocity)
    return Prog(prog), scheduler


def build_alpha_step(shared, cfg, startup):
    """Adam on the architecture parameters from their G_ (lr 3e-4, betas 0.5 / 0.999,
    weight decay 1e-3).  DAAS: alpha's learning rate follows a per-epoch schedule (0 while
    beta trains alone), beta's is constant; returns (Prog, that schedule or None)."""
    import paddle

    method = cfg.method
    prog = _new_program()
    scheduler = None
    with _guard(prog, startup):
        groups = [[shared.parameter(n, None) for n in cfg.arch_names if n.startswith("alphas")],
                  [shared.parameter(n, None) for n in cfg.arch_names if n.startswith("betas")]]
        optimizers = []
        for params in filter(None, groups):
            lr = cfg.arch_learning_rate
            if method.daas and params is groups[0]:
                lr = scheduler = paddle.optimizer.lr.LambdaDecay(lr, method.alpha_lr_factor)
            opt = paddle.optimizer.Adam(
                lr, beta1=0.5, beta2=0.999, parameters=params,
                weight_decay=paddle.regularizer.L2Decay(cfg.arch_weight_decay))
            opt.apply_gradients([(a, shared.buffer("G_" + a.name, None)) for a in params])
            optimizers.append(opt)
    for opt in optimizers:
        for kind, per_param in opt._accumulators.items():  # moments and beta powers
            for name, value in per_param.items():
                shared.alias(f"adam_{kind}_{name}", value)
    return Prog(prog), scheduler


def build_vector_programs(net, shared, cfg, startup):
    """unroll, perturb_plus, perturb_minus, combine: the second-order step's vector work.

    Each loops over the weight banks; `w`, `backup`, `v` below are lists of tensors.
    """
    import paddle

    shapes = net.params.bank_shapes()
    progs = {}

    def program(name, feeds=()):
        progs[name] = Prog(_new_program(), list(feeds))
        return _guard(progs[name].program, startup)

    def per_bank(kind):
        if kind == "w":
            return [shared.parameter(b, None) for b in shapes]
        return [shared.buffer(f"{kind}_{b}", shape) for b, shape in shapes.items()]

    def per_alpha(kind):  # every architecture parameter
        return [shared.buffer(f"{kind}_{a}", shared.get(a).shape) for a in cfg.arch_names]

    def const(value):
        # a tensor, not a Python float: `tensor * 0.9` stores 0.9 as a float32 attribute
        return paddle.full([1], value, cfg.dtype)

    def assign_all(values, targets):
        for value, target in zip(values, targets):
            paddle.assign(value, output=target)

    with program("unroll", ["eta"]):  # backup <- w;  w <- w'
        w, backup, g, m = per_bank("w"), per_bank("backup"), per_bank("G"), per_bank("momentum")
        eta, mu, decay = _data("eta", [1], cfg.dtype), const(cfg.momentum), const(cfg.weight_decay)
        assign_all(w, backup)
        assign_all([wi - eta * (mu * mi + gi + decay * wi) for wi, mi, gi in zip(w, m, g)], w)

    with program("perturb_plus"):  # d_alpha <- G_alpha;  v <- G_w;  w <- backup + R v
        w, backup, g, v = per_bank("w"), per_bank("backup"), per_bank("G"), per_bank("v")
        assign_all(per_alpha("G"), per_alpha("d"))
        assign_all(g, v)
        norm = paddle.sqrt(paddle.add_n([paddle.sum(gi * gi) for gi in g]))
        radius = paddle.reshape(const(cfg.hessian_r) / norm, [1])
        paddle.assign(radius, output=shared.buffer("R", [1]))
        assign_all([bi + radius * gi for bi, gi in zip(backup, g)], w)

    with program("perturb_minus"):  # g_plus <- G_alpha;  w <- backup - R v
        w, backup, v = per_bank("w"), per_bank("backup"), per_bank("v")
        radius = shared.buffer("R", None)
        assign_all(per_alpha("G"), per_alpha("g_plus"))
        assign_all([bi - radius * vi for bi, vi in zip(backup, v)], w)

    with program("combine", ["eta"]):  # G_alpha <- d_alpha - eta (g+ - g-) / 2R;  w <- backup
        eta, radius = _data("eta", [1], cfg.dtype), shared.buffer("R", None)
        g_alpha = per_alpha("G")
        assign_all([d - eta * (gp - gm) / (const(2.0) * radius)
                    for d, gp, gm in zip(per_alpha("d"), per_alpha("g_plus"), g_alpha)], g_alpha)
        assign_all(per_bank("backup"), per_bank("w"))
    return progs


def build_search_programs(cfg: SearchConfig) -> SearchPrograms:
    """All programs of the search, built once, sharing variables by name."""
    net = SearchNetwork(cfg.C, cfg.num_classes, cfg.layers, cfg.in_channels)
    shared = SharedVars(cfg.dtype)
    startup = _new_program()
    progs = {"grad": build_gradient_program(net, shared, cfg, startup),
             "evaluate": build_eval_program(net, shared, cfg, startup)}
    progs["weight_step"], scheduler = build_weight_step(net, shared, cfg, startup)
    progs["alpha_step"], alpha_scheduler = build_alpha_step(shared, cfg, startup)
    if cfg.unrolled:
        progs.update(build_vector_programs(net, shared, cfg, startup))
    return SearchPrograms(cfg, net, startup, shared, scheduler, progs, alpha_scheduler)
