"""The architect: one update of the architecture parameters alpha (DARTS, section 2.3).

    first order    grad_alpha = dL_val(w, alpha) / dalpha
    second order   w'         = w - eta * (mu * m + dL_train(w) / dw + lambda * w)
                   grad_alpha = dL_val(w', alpha) / dalpha
                                - eta * (g+ - g-) / (2R),      R = 0.01 / ||v||,
                   v  = dL_val(w', alpha) / dw',
                   g+- = dL_train(w +- R v, alpha) / dalpha      (finite-difference H v)

Every gradient is a run of the same gradient program; the vector programs move the flat
weight vector between w, w' and w +- R v and restore w exactly (they copy it, no
arithmetic round trip).  The BN running statistics are left alone by all these extra passes
(bn_update = 0); in first order the validation pass updates them as in the original code.
See programs.py for what each program computes.

Search methods beyond plain DARTS (methods.py) read per-epoch knobs (`set_epoch`), knobs
computed from the current alphas (the soft top-k thresholds, the hard one-hot; refreshed
before each step and after the alpha update) and switches that say which op weights each
pass uses: the gradient of w' (UNROLL), dL_val (ARCH), g+- (HESSIAN), the weight step
(WEIGHTS).
"""

import numpy as np

from .methods import ARCH, HESSIAN, UNROLL, WEIGHTS

ON = np.ones(1, np.float32)
OFF = np.zeros(1, np.float32)


class Architect:
    def __init__(self, runner, programs, unrolled=False):
        self.runner, self.p, self.unrolled = runner, programs, unrolled
        self.knobs = self.current = {}
        self.epoch = 0
        if unrolled and "unroll" not in programs.progs:
            raise ValueError("second order needs programs built with unrolled=True")

    def set_epoch(self, epoch, epochs):
        """Take the method's knobs of 0-based `epoch` of `epochs`; returns them."""
        self.epoch = epoch
        self.knobs = self.p.config.method.knobs(epoch, epochs)
        self.refresh()
        return self.knobs

    def refresh(self):
        """The knobs of the next passes: this epoch's, plus those that follow alpha's
        current value (methods.MethodConfig.alpha_knobs); returns them."""
        method = self.p.config.method
        self.current = self.knobs
        if method.follows_alpha:
            arch = {n: self.runner.get(n) for n in self.p.config.arch_names}
            self.current = {**self.knobs, **method.alpha_knobs(arch, self.knobs)}
        return self.current

    def feeds(self, kind):
        """The method's feeds of a pass of `kind` (methods.UNROLL, ARCH, HESSIAN, WEIGHTS)."""
        return {**self.current, **self.p.config.method.switches(kind, self.epoch)}

    def gradient(self, batch, bn_update, kind):
        """One forward/backward pass: fills G_w and G_alpha; returns (loss, accuracy)."""
        x, y = batch
        loss, acc = self.runner.run(self.p["grad"], x=x, y=y, bn_update=bn_update,
                                    **self.feeds(kind))
        return float(loss), float(acc)

    def step(self, train_batch, valid_batch, eta):
        """Update alpha on a validation batch; returns the validation (loss, accuracy)."""
        self.refresh()
        if self.unrolled:
            result = self._second_order_gradient(train_batch, valid_batch, eta)
        else:
            result = self.gradient(valid_batch, ON, ARCH)
        self.runner.run(self.p["alpha_step"])
        return result

    def _second_order_gradient(self, train_batch, valid_batch, eta):
        run, eta = self.runner.run, np.array([eta], np.float32)
        self.gradient(train_batch, OFF, UNROLL)         # G_w = dL_train(w)/dw
        run(self.p["unroll"], eta=eta)                  # w <- w'
        result = self.gradient(valid_batch, OFF, ARCH)  # d_alpha, v at w'
        run(self.p["perturb_plus"])                     # w <- w + R v
        self.gradient(train_batch, OFF, HESSIAN)        # g+
        run(self.p["perturb_minus"])                    # w <- w - R v
        self.gradient(train_batch, OFF, HESSIAN)        # g-
        run(self.p["combine"], eta=eta)                 # G_alpha <- d_alpha - eta H v; w restored
        return result

    def weight_step(self, train_batch):
        """The ordinary weight update on the training batch (after the alpha step)."""
        self.refresh()  # alpha has just moved
        result = self.gradient(train_batch, ON, WEIGHTS)
        self.runner.run(self.p["weight_step"])
        return result
