"""Builders of the search programs.  Each is built once and returns a `Prog` record.

Every pass of the search, whatever it is for, runs the same gradient program:

  grad         batch, bn_update -> loss, accuracy;  G_w = dL/dw,  G_alpha = dL/dalpha
               (bn_update = 1 stores the BN running statistics of this pass, 0 leaves them;
               methods other than plain DARTS, and loss terms, also read their feeds:
               methods/)
               With N data-parallel processes each feeds its part of the batch, and the
               gradients, loss and accuracy are means over the processes before anything
               reads them: every pass of the architect and the weight step alike.
  weight_step  w <- Momentum(w, clip_5(G_w)) with weight decay, cosine LR
  evaluate     batch -> loss, accuracy with BN in inference mode (means over processes)
  hessian      batch, u -> loss, H u: the Hessian of the architect's validation loss in the
               alphas times u, exactly (double back-propagation; built when first asked
               for, after the search has started: search/collapse.py)

The alpha update's own programs (Adam on alpha, and second order's vector work) are built
by architect.py, next to the code that runs them.
"""

from dataclasses import dataclass, field
from typing import Dict

from ..distributed import mean_over_ranks
from ..nets.ops import Context, cross_entropy, twice_differentiable
from ..optim import weight_optimizer
from ..paddle_static import fast_build, merge_repeated_ops, paddle, twice_differentiable_gradients
from ..nets.params import SharedVars, gradient_name
from ..runner import Prog
from ..runtime import depthwise_backend
from . import architect
from .arch_params import ArchParameters
from .methods import Darts
from .supernet import SearchNetwork


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
    nesterov: bool = False  # Nesterov's momentum for the weights (NAS-Bench-201's search)
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_learning_rate: float = 3e-4
    arch_weight_decay: float = 1e-3
    unrolled: bool = False
    hessian_r: float = 0.01  # R = hessian_r / ||v|| (the paper's epsilon, 0.01)
    dtype: str = "float32"  # float64 for gradient checks in tests
    world_size: int = 1  # data-parallel processes (distributed.py)
    method: Darts = field(default_factory=Darts)  # or another class of methods/


@dataclass
class SearchPrograms:
    config: SearchConfig
    network: object  # SearchNetwork, or another space's supernet
    arch: ArchParameters
    startup: object
    shared: SharedVars
    lr_scheduler: object  # the weights' cosine schedule: lr_scheduler() is eta
    progs: Dict[str, Prog]
    alpha_scheduler: object = None  # alpha's learning rate where it varies (DAAS)

    def __getitem__(self, name):
        return self.progs[name]

    def state_names(self):
        """{checkpoint key: scope name} of everything a search's state consists of:
        weights, BN statistics, architecture parameters, momentum buffers, Adam moments and
        step powers."""
        keys = [*self.network.params.banks, "bn.mean", "bn.var", *self.arch.names]
        keys += [k for k in self.shared.names() if k.startswith(("momentum_", "adam_"))]
        return {k: self.shared.scope_name(k) for k in keys}

    def gradient_name(self, name):
        """The scope variable holding dL/d`name` after a run of the gradient program."""
        return gradient_name(name)

    def momentum_name(self, bank):
        """The scope variable of a weight bank's momentum buffer."""
        return self.shared.scope_name("momentum_" + bank)

    def initial_values(self, rng):
        """{variable: array} to start a search from: weights, BN statistics, alphas (betas)."""
        values = self.network.params.initial_values(rng)
        values["bn.mean"], values["bn.var"] = self.network.stats.initial_values()
        values.update(self.arch.initial_values(rng))
        return values

    def hessian(self):
        """The Hessian-vector program (`build_hessian_program`), built on the first call."""
        if "hessian" not in self.progs:
            self.progs["hessian"] = build_hessian_program(self.network, self.shared, self.arch,
                                                          self.config, self.startup)
        return self.progs["hessian"]

    def next_epoch(self):
        """Advance the per-epoch learning-rate schedules."""
        self.lr_scheduler.step()
        if self.alpha_scheduler is not None:
            self.alpha_scheduler.step()


def _forward(net, shared, arch, cfg, training):
    """x, y (, feeds) -> (weight banks, arch parameters, feed names, loss, top-1 accuracy).

    The training forward is the gradient program's, which serves the architect's passes
    and the weight pass alike (fed values tell them apart where the method cares); the
    loss is the cross-entropy plus what the method adds, plus each of its loss terms
    (methods/terms.py) times the term's gate.  The inference forward (validation accuracy)
    is the weight pass's network with the plain cross-entropy.
    """
    method = cfg.method
    terms = method.loss_terms if training else ()
    x = paddle.static.data("x", [-1, cfg.in_channels, cfg.image_size, cfg.image_size], cfg.dtype)
    y = paddle.static.data("y", [-1], "int64")
    own = method.feed_shapes(training)
    shapes = dict(own)
    for term in terms:
        for name, shape in {term.gate: [1], **term.feed_shapes()}.items():
            if name in shapes:  # two owners would read one fed value
                raise ValueError(f"loss term {term.name!r} feeds {name!r}, which another "
                                 "feeds too: name it after the term")
            shapes[name] = shape
    feeds = {n: paddle.static.data(n, shape, cfg.dtype) for n, shape in shapes.items()}
    banks = net.materialize(shared)
    arch_vars = arch.materialize(shared)
    weights, extra = method.op_weights(arch_vars, {n: feeds[n] for n in own})
    logits = net(x, weights, Context(training=training))
    loss = cross_entropy(logits, y)
    if extra is not None and training:
        loss = loss + extra
    for term in terms:
        value = term.loss(arch_vars, weights, {n: feeds[n] for n in term.feed_shapes()})
        loss = loss + paddle.reshape(feeds[term.gate] * value, [])
    # the share of top-1 hits, in cfg.dtype: paddle.metric.accuracy's output is declared
    # float64 in a float64 program but holds float32, which an op reading it (the mean over
    # processes) rejects
    acc = paddle.mean(paddle.cast(paddle.equal(paddle.argmax(logits, axis=1), y), cfg.dtype))
    return banks, list(arch_vars.values()), ["x", "y", *feeds], loss, acc


@fast_build
def build_gradient_program(net, shared, arch, cfg, startup):
    """The one forward/backward program: G_<var> <- dL/d<var> for every bank and alpha."""
    prog = paddle.static.Program()
    with paddle.static.program_guard(prog, startup):
        banks, arch_vars, feeds, loss, acc = _forward(net, shared, arch, cfg, training=True)
        net.stats.write_back(paddle.static.data("bn_update", [1], cfg.dtype))
        variables = banks + arch_vars
        # None: an alpha no cell uses (e.g. no normal cell in a 2-layer net)
        grads = [paddle.zeros(var.shape, cfg.dtype) if g is None else g
                 for var, g in zip(variables, paddle.static.gradients([loss], variables))]
        fetch = _over_processes([loss, acc], cfg)
        for var, g in zip(variables, _over_processes(grads, cfg)):
            paddle.assign(g, output=shared.gradient(var.name, var.shape))
    # the opt-in oneDNN depthwise backend: this program with merged ops fails at its first
    # run with a bare std::exception in Paddle 3.3 (docs/paddle.md section 8)
    merged = prog if depthwise_backend() == "onednn" else merge_repeated_ops(prog)
    return Prog(merged, feeds + ["bn_update"], fetch)


def hessian_feed(name):
    """The feed of the hessian program carrying alpha `name`'s part of u."""
    return "u_" + name


@fast_build
def build_hessian_program(net, shared, arch, cfg, startup):
    """batch, feeds, u -> [loss, H u per alpha], H the Hessian in the alphas of the loss the
    gradient program differentiates, at the current weights, BN in training mode and its
    statistics untouched: Pearlmutter's H u = d/dalpha (dL/dalpha . u), the alpha gradient
    differentiated once more.  The other architecture parameters (betas) are constants."""
    prog = paddle.static.Program()
    with paddle.static.program_guard(prog, startup), twice_differentiable():
        _, arch_vars, feeds, loss, _ = _forward(net, shared, arch, cfg, training=True)
        names = arch.group("alphas")
        alphas = [v for name, v in zip(arch.names, arch_vars) if name in names]
        u = [paddle.static.data(hessian_feed(n), a.shape, cfg.dtype) for n, a in zip(names, alphas)]
        grads = twice_differentiable_gradients([loss], alphas)
        inner = paddle.add_n([paddle.sum(g * v) for g, v in zip(grads, u) if g is not None])
        products = [paddle.zeros(a.shape, cfg.dtype) if h is None else h
                    for a, h in zip(alphas, twice_differentiable_gradients([inner], alphas))]
        fetch = _over_processes([loss, *products], cfg)
    return Prog(merge_repeated_ops(prog), feeds + [hessian_feed(n) for n in names], fetch)


def _over_processes(values, cfg):
    """The means over the data-parallel processes (the values themselves in one)."""
    return values if cfg.world_size == 1 else mean_over_ranks(values, cfg.world_size)


def build_eval_program(net, shared, arch, cfg, startup):
    prog = paddle.static.Program()
    with paddle.static.program_guard(prog, startup):
        _, _, feeds, loss, acc = _forward(net, shared, arch, cfg, training=False)
        fetch = _over_processes([loss, acc], cfg)
    return Prog(merge_repeated_ops(prog), feeds, fetch)


def build_weight_step(net, shared, cfg, startup):
    """Momentum SGD on all weight banks from G_w, as the original's optimizer.step().
    -> (Prog, its cosine schedule, {bank: its momentum buffer}): the optimizer creates the
    buffers, and second order's virtual step reads them (architect.build_alpha_programs
    takes them), so this is built first."""
    prog = paddle.static.Program()
    with paddle.static.program_guard(prog, startup):
        banks = [shared.parameter(name, None) for name in net.params.banks]
        scheduler = paddle.optimizer.lr.CosineAnnealingDecay(
            cfg.learning_rate, T_max=cfg.epochs, eta_min=cfg.learning_rate_min)
        opt = weight_optimizer(scheduler, banks, cfg)
        opt.apply_gradients([(w, shared.gradient(w.name)) for w in banks])
    velocity = dict(opt._accumulators["velocity"])
    for name, value in velocity.items():
        shared.alias("momentum_" + name, value)  # the checkpoint's key
    return Prog(prog), scheduler, velocity


def search_network(cfg: SearchConfig) -> SearchNetwork:
    """The supernet of `cfg` (its method says whether channels are partial)."""
    return SearchNetwork(cfg.C, cfg.num_classes, cfg.layers, cfg.in_channels,
                         k=cfg.method.partial_channels)


# Host memory the first second-order step of the default supernet (C 16, 8 cells, 32x32,
# DARTS) takes beyond what building leaves (peak RSS minus RSS before the first run,
# measured at batches 16 and 64): a fixed part (the executor's preparation, workspaces) and
# a part per sample; and PC-DARTS's share of it.
HEAP_FIXED_MB, HEAP_PER_SAMPLE_MB = 1300, 65
PARTIAL_CHANNEL_HEAP = 0.35


def search_heap_bytes(cfg: SearchConfig, batch):
    """Three quarters of what the search's first passes will allocate at `batch` (a
    per-process batch), scaled from the default supernet by width, image area and cells
    (smaller networks get less than they use): what runtime.prefault may touch ahead
    without holding memory the search never uses."""
    scale = cfg.C / 16 * (cfg.image_size / 32) ** 2 * cfg.layers / 8
    if cfg.method.partial_channels > 1:
        scale *= PARTIAL_CHANNEL_HEAP
    return int(0.75 * scale * (HEAP_FIXED_MB + HEAP_PER_SAMPLE_MB * batch) * 1e6)


@fast_build
def build_search_programs(cfg: SearchConfig, net=None) -> SearchPrograms:
    """All programs of the search on the supernet `net` (its space's, spaces/; None: the
    DARTS supernet of `cfg`), built once, sharing variables by name."""
    net = net or search_network(cfg)
    arch = cfg.method.arch_parameters()
    shared = SharedVars(cfg.dtype)
    startup = paddle.static.Program()
    progs = {"grad": build_gradient_program(net, shared, arch, cfg, startup),
             "evaluate": build_eval_program(net, shared, arch, cfg, startup)}
    progs["weight_step"], scheduler, velocity = build_weight_step(net, shared, cfg, startup)
    alpha_progs, alpha_scheduler = architect.build_alpha_programs(net, shared, arch, cfg, startup,
                                                                  velocity)
    progs.update(alpha_progs)
    return SearchPrograms(cfg, net, arch, startup, shared, scheduler, progs, alpha_scheduler)
