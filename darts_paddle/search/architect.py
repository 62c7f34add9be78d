"""The architect: one update of the architecture parameters alpha (DARTS, section 2.3,
equations 6-8), its programs and their runs.

    first order    grad_alpha = dL_val(w, alpha) / dalpha
    second order   w'         = w - eta * (mu * m + dL_train(w) / dw + lambda * w)
                   grad_alpha = dL_val(w', alpha) / dalpha
                                - eta * (g+ - g-) / (2R),      R = 0.01 / ||v||,
                   v  = dL_val(w', alpha) / dw',
                   g+- = dL_train(w +- R v, alpha) / dalpha      (finite-difference H v)
    then           alpha <- Adam(alpha, grad_alpha)

Every gradient is a run of the one gradient program (programs.py), which writes G_w and
G_alpha; the small programs built here move vectors between the buffers named at each call
in `alpha_gradient`.  The weights return to w exactly (they are copied back, no arithmetic
round trip), and the BN running statistics are left alone by the extra passes
(bn_update = 0); in first order the validation pass updates them as in the original code.

The programs read what the method (methods/) and its loss terms are fed: per epoch
(`set_epoch`, which must come first), computed from the current alphas (refreshed before
each step and after the alpha update), and per pass, which says how the pass weights the
ops and which loss terms join its loss: UNROLL (the gradient for w'), ARCH (dL_val),
HESSIAN (g+-), WEIGHTS (the weight step).  In a method's warm-up (PC-DARTS) the
architecture is not updated at all: no pass, no Adam step.
"""

import numpy as np

from ..paddle_static import paddle
from ..runner import Prog
from .methods import ARCH, HESSIAN, UNROLL, WEIGHTS

ON = np.ones(1, np.float32)
OFF = np.zeros(1, np.float32)


class Architect:
    def __init__(self, runner, programs, unrolled=False):
        self.runner, self.programs, self.unrolled = runner, programs, unrolled
        self.method = programs.config.method
        self._epoch = None  # (epoch, epochs) once set_epoch has run
        self.epoch_feeds = self.current_feeds = {}
        if unrolled and "unroll" not in programs.progs:
            raise ValueError("second order needs programs built with unrolled=True")

    def set_epoch(self, epoch, epochs):
        """Take the method's feeds of 0-based `epoch` of `epochs`; returns them."""
        self._epoch = epoch, epochs
        self.epoch_feeds = self.method.epoch_feeds(epoch, epochs)
        self.refresh()
        return self.epoch_feeds

    def refresh(self):
        """The feeds of the next passes: this epoch's, plus those the method and its loss
        terms compute from alpha's current value; returns them."""
        self._epochs()  # set_epoch first: the epoch's feeds come from it
        owners = [o for o in (self.method, *self.method.loss_terms) if o.follows_alpha]
        self.current_feeds = dict(self.epoch_feeds)
        if owners:
            arch = self.programs.arch.read(self.runner)
            for owner in owners:
                self.current_feeds.update(owner.alpha_feeds(arch, self.epoch_feeds))
        return self.current_feeds

    def feeds(self, kind, training=True):
        """The method's and its loss terms' feeds of a pass of `kind` (UNROLL, ARCH,
        HESSIAN, WEIGHTS) to the gradient and hessian programs; training=False: the feeds
        of the inference program (evaluate), those the method's feed_shapes names for it."""
        feeds = {**self.current_feeds, **self.method.pass_feeds(kind, self._epochs()[0])}
        if not training:
            reads = self.method.feed_shapes(training=False)
            return {name: value for name, value in feeds.items() if name in reads}
        for term in self.method.loss_terms:
            feeds[term.gate] = ON if kind in term.passes else OFF
        return feeds

    def _epochs(self):
        """(epoch, epochs) of set_epoch: every pass's feeds depend on them."""
        if self._epoch is None:
            raise RuntimeError("Architect.set_epoch(epoch, epochs) must come before any pass")
        return self._epoch

    def gradient(self, batch, bn_update, kind):
        """One forward/backward pass: fills G_w and G_alpha; returns (loss, accuracy)."""
        x, y = batch
        loss, acc = self.runner.run(self.programs["grad"], x=x, y=y, bn_update=bn_update,
                                    **self.feeds(kind))
        return float(loss), float(acc)

    def step(self, train_batch, valid_batch, eta):
        """Update alpha on a validation batch; returns the validation (loss, accuracy), or
        None in the method's warm-up, which leaves the architecture alone."""
        epoch, epochs = self._epochs()
        if epoch < self.method.warmup(epochs):
            return None
        self.refresh()
        result = self.alpha_gradient(train_batch, valid_batch, eta)
        self.runner.run(self.programs["alpha_step"])    # alpha <- Adam(alpha, G_alpha)
        return result

    def alpha_gradient(self, train_batch, valid_batch, eta):
        """G_alpha <- the alpha gradient of the order this architect runs (the weights end
        where they started); returns the validation (loss, accuracy)."""
        if not self.unrolled:
            return self.gradient(valid_batch, ON, ARCH)
        run, p, eta = self.runner.run, self.programs, np.array([eta], np.float32)
        self.gradient(train_batch, OFF, UNROLL)         # G_w = dL_train(w)/dw
        run(p["save_w"])                                # w_backup <- w
        run(p["unroll"], eta=eta)                       # w <- w' = w - eta (mu m + G_w + lambda w)
        result = self.gradient(valid_batch, OFF, ARCH)  # G_alpha, G_w = dL_val(w')/d(alpha, w')
        run(p["keep_val"])                              # d_alpha <- G_alpha;  v <- G_w
        run(p["perturb_plus"])                          # R <- 0.01 / ||v||;  w <- w_backup + R v
        self.gradient(train_batch, OFF, HESSIAN)        # G_alpha = g+
        run(p["keep_g_plus"])                           # g_plus <- G_alpha
        run(p["perturb_minus"])                         # w <- w_backup - R v
        self.gradient(train_batch, OFF, HESSIAN)        # G_alpha = g-
        run(p["combine"], eta=eta)                      # G_alpha <- d_alpha - eta (g_plus - G_alpha) / 2R
        run(p["restore_w"])                             # w <- w_backup
        return result

    def unrolled_terms(self):
        """The second-order step's parts after `alpha_gradient`: {"d_alpha": {alpha: array},
        "v": {bank: array}, "R": float}."""
        get = self.runner.get
        return {"d_alpha": {a: get("d_" + a) for a in self.programs.arch.names},
                "v": {b: get("v_" + b) for b in self.programs.network.params.banks},
                "R": float(get("R")[0])}

    def weight_step(self, train_batch):
        """The ordinary weight update on the training batch (after the alpha step)."""
        self.refresh()  # alpha has just moved
        result = self.gradient(train_batch, ON, WEIGHTS)
        self.runner.run(self.programs["weight_step"])
        return result


# ---------------------------------------------------------------------- the programs

def build_alpha_programs(net, shared, arch, cfg, startup, velocity):
    """The programs `Architect` runs besides the gradient program: {name: Prog} and
    alpha's learning-rate schedule (None where it is constant).  `velocity`: the weight
    optimizer's momentum buffer of each bank, which the virtual step reads
    (programs.build_weight_step returns it).

      alpha_step     alpha <- Adam(alpha, G_alpha)  (lr 3e-4, betas 0.5 / 0.999, weight
                     decay 1e-3), one Adam per group of architecture parameters (DAAS:
                     alphas with their schedule, betas at a constant rate)
    second order (cfg.unrolled), over the weight banks w:
      save_w         w_backup <- w
      unroll         w <- w - eta * (mu * m + G_w + lambda * w)
      keep_val       d_alpha <- G_alpha;  v <- G_w
      perturb_plus   R <- hessian_r / ||v||;  w <- w_backup + R v
      keep_g_plus    g_plus <- G_alpha
      perturb_minus  w <- w_backup - R v
      combine        G_alpha <- d_alpha - eta * (g_plus - G_alpha) / (2 R)
      restore_w      w <- w_backup
    """
    progs = {}
    alpha_step, scheduler = _alpha_step(shared, arch, cfg, startup)
    progs["alpha_step"] = alpha_step
    if not cfg.unrolled:
        return progs, scheduler

    shapes = net.params.bank_shapes()
    missing = [b for b in shapes if b not in velocity]
    if missing:
        raise ValueError(f"no momentum buffer of the weight banks {missing[:3]}...: the "
                         "virtual step reads the weight optimizer's; build the weight step "
                         "first and pass its velocity")

    def program(name, feeds=()):
        progs[name] = Prog(paddle.static.Program(), list(feeds))
        return paddle.static.program_guard(progs[name].program, startup)

    def banks(kind):  # one tensor per weight bank: "w", "G" (its gradient), "momentum" (the
        # weight optimizer's), or a buffer kind
        if kind == "w":
            return [shared.parameter(b, None) for b in shapes]
        if kind == "G":
            return [shared.gradient(b) for b in shapes]
        if kind == "momentum":
            return [shared.bind(velocity[b]) for b in shapes]
        return [shared.buffer(f"{kind}_{b}", shape) for b, shape in shapes.items()]

    def alphas(kind):  # one buffer per architecture parameter: "G" (its gradient) or a kind
        if kind == "G":
            return [shared.gradient(a) for a in arch.names]
        return [shared.buffer(f"{kind}_{a}", shared.get(a).shape) for a in arch.names]

    def const(value):
        # a tensor, not a Python float: `tensor * 0.9` stores 0.9 as a float32 attribute
        return paddle.full([1], value, cfg.dtype)

    def assign(values, targets):
        for value, target in zip(values, targets):
            paddle.assign(value, output=target)

    def radius():
        return shared.buffer("R", [1])

    with program("save_w"):
        assign(banks("w"), banks("backup"))
    with program("unroll", ["eta"]):
        w, g, m = banks("w"), banks("G"), banks("momentum")
        eta = paddle.static.data("eta", [1], cfg.dtype)
        mu, decay = const(cfg.momentum), const(cfg.weight_decay)
        assign([wi - eta * (mu * mi + gi + decay * wi) for wi, mi, gi in zip(w, m, g)], w)
    with program("keep_val"):
        assign(alphas("G"), alphas("d"))
        assign(banks("G"), banks("v"))
    with program("perturb_plus"):
        v = banks("v")
        norm = paddle.sqrt(paddle.add_n([paddle.sum(vi * vi) for vi in v]))
        r = paddle.reshape(const(cfg.hessian_r) / norm, [1])
        paddle.assign(r, output=radius())
        assign([bi + r * vi for bi, vi in zip(banks("backup"), v)], banks("w"))
    with program("keep_g_plus"):
        assign(alphas("G"), alphas("g_plus"))
    with program("perturb_minus"):
        assign([bi - radius() * vi for bi, vi in zip(banks("backup"), banks("v"))], banks("w"))
    with program("combine", ["eta"]):
        eta, g_minus = paddle.static.data("eta", [1], cfg.dtype), alphas("G")
        assign([d - eta * (gp - gm) / (const(2.0) * radius())
                for d, gp, gm in zip(alphas("d"), alphas("g_plus"), g_minus)], g_minus)
    with program("restore_w"):
        assign(banks("backup"), banks("w"))
    return progs, scheduler


def _alpha_step(shared, arch, cfg, startup):
    """Adam on each group of architecture parameters from their G_; alpha's learning rate
    follows the method's schedule where it has one (DAAS freezes it at first)."""
    method = cfg.method
    prog = paddle.static.Program()
    scheduler = None
    optimizers = []
    with paddle.static.program_guard(prog, startup):
        for group in ("alphas", "betas"):
            params = [shared.parameter(n, None) for n in arch.group(group)]
            if not params:
                continue
            lr = cfg.arch_learning_rate
            if group == "alphas" and method.alpha_frozen_epochs:
                lr = scheduler = paddle.optimizer.lr.LambdaDecay(lr, method.alpha_lr_factor)
            opt = paddle.optimizer.Adam(
                lr, beta1=0.5, beta2=0.999, parameters=params,
                weight_decay=paddle.regularizer.L2Decay(cfg.arch_weight_decay))
            opt.apply_gradients([(a, shared.gradient(a.name)) for a in params])
            optimizers.append(opt)
    for opt in optimizers:
        for kind, per_param in opt._accumulators.items():  # moments and beta powers
            for name, value in per_param.items():
                shared.alias(f"adam_{kind}_{name}", value)
    return Prog(prog), scheduler
