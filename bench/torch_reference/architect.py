"""The DARTS search step in PyTorch eager, as the original release computes it: the
reference our static programs are timed against (bench/compare_torch.py).

    first order    alpha.grad = dL_val(w, alpha) / dalpha                    (loss.backward())
    second order   w'   = w - eta * (mu * m + dL_train(w) / dw + lambda * w)
                   alpha.grad = dL_val(w', alpha) / dalpha - eta * (g+ - g-) / (2R),
                   v = dL_val(w', alpha) / dw',  R = 0.01 / ||v||,
                   g+- = dL_train(w +- R v, alpha) / dalpha
    then Adam on alpha; then the weight step: SGD momentum, weight decay, clip 5.

One deviation from the published code, in PyTorch's favour: the unrolled network w' is a
copy made once and refilled every step, where the original builds a new network
(`model.new()`) each step.  torch is imported here only (optional dependency).
"""

import copy

import torch
import torch.nn.functional as F


def search_loss(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


class TorchArchitect:
    def __init__(self, model, momentum=0.9, weight_decay=3e-4, arch_learning_rate=3e-4,
                 arch_weight_decay=1e-3, hessian_r=0.01):
        self.model, self.momentum, self.weight_decay = model, momentum, weight_decay
        self.hessian_r = hessian_r
        self.optimizer = torch.optim.Adam(model.arch_parameters(), lr=arch_learning_rate,
                                          betas=(0.5, 0.999), weight_decay=arch_weight_decay)
        self._unrolled = None

    def step(self, train_batch, valid_batch, eta, weight_optimizer, unrolled):
        """Update alpha on a validation batch (weight_optimizer: the weights' SGD, whose
        momentum buffers enter w')."""
        self.backward(train_batch, valid_batch, eta, weight_optimizer, unrolled)
        self.optimizer.step()

    def backward(self, train_batch, valid_batch, eta, weight_optimizer, unrolled):
        """Set alpha.grad to the architect's gradient (first or second order)."""
        self.optimizer.zero_grad()
        if unrolled:
            self._backward_unrolled(train_batch, valid_batch, eta, weight_optimizer)
        else:  # as published: backward() also fills the weights' .grad, reset by zero_grad
            search_loss(self.model, valid_batch).backward()

    def _unrolled_model(self, train_batch, eta, weight_optimizer):
        """A network holding w' (and the current alphas)."""
        weights = self.model.weight_parameters()
        grads = torch.autograd.grad(search_loss(self.model, train_batch), weights)
        if self._unrolled is None:
            self._unrolled = copy.deepcopy(self.model)
        unrolled = self._unrolled
        with torch.no_grad():
            for w, g, u in zip(weights, grads, unrolled.weight_parameters()):
                buf = weight_optimizer.state.get(w, {}).get("momentum_buffer")
                step = g + self.weight_decay * w
                if buf is not None:
                    step = step + self.momentum * buf
                u.copy_(w - eta * step)
                u.grad = None
            for a, u in zip(self.model.arch_parameters(), unrolled.arch_parameters()):
                u.copy_(a)
                u.grad = None
        return unrolled

    def _backward_unrolled(self, train_batch, valid_batch, eta, weight_optimizer):
        unrolled = self._unrolled_model(train_batch, eta, weight_optimizer)
        search_loss(unrolled, valid_batch).backward()
        d_alpha = [u.grad for u in unrolled.arch_parameters()]
        v = [u.grad for u in unrolled.weight_parameters()]
        implicit = self._hessian_vector_product(v, train_batch)
        for a, d, h in zip(self.model.arch_parameters(), d_alpha, implicit):
            a.grad = d - eta * h

    def _hessian_vector_product(self, v, train_batch):
        """(d2 L_train / dalpha dw) v by central differences around w, w restored after."""
        weights = self.model.weight_parameters()
        alphas = self.model.arch_parameters()
        radius = self.hessian_r / torch.cat([t.reshape(-1) for t in v]).norm()
        with torch.no_grad():
            torch._foreach_add_(weights, v, alpha=radius.item())
        g_plus = torch.autograd.grad(search_loss(self.model, train_batch), alphas)
        with torch.no_grad():
            torch._foreach_add_(weights, v, alpha=-2 * radius.item())
        g_minus = torch.autograd.grad(search_loss(self.model, train_batch), alphas)
        with torch.no_grad():
            torch._foreach_add_(weights, v, alpha=radius.item())
        return [(p - m) / (2 * radius) for p, m in zip(g_plus, g_minus)]


def weight_optimizer(model, learning_rate=0.025, momentum=0.9, weight_decay=3e-4):
    return torch.optim.SGD(model.weight_parameters(), learning_rate, momentum=momentum,
                           weight_decay=weight_decay)


def weight_step(model, optimizer, train_batch, grad_clip=5.0):
    """The ordinary weight update on the training batch, after the alpha step."""
    optimizer.zero_grad()
    loss = search_loss(model, train_batch)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.weight_parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def search_step(architect, optimizer, train_batch, valid_batch, unrolled):
    """One step of the search loop: the architect's, then the weights'."""
    eta = optimizer.param_groups[0]["lr"]
    architect.step(train_batch, valid_batch, eta, optimizer, unrolled)
    return weight_step(architect.model, optimizer, train_batch)
