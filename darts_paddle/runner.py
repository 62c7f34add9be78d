"""The one owner of the Executor, the Scope and the place.

Everything that runs a Program or touches a variable's value goes through a Runner, so the
rest of the code never sees feeds, fetch lists or scopes.
"""

import contextlib
from dataclasses import dataclass, field
from typing import List

import numpy as np

from . import onednn
from .paddle_static import paddle
from .runtime import depthwise_backend, get_place


@dataclass
class Prog:
    """A built Program with the names it is fed and its fixed fetch list (a changed fetch
    list re-prepares the program: docs/paddle.md)."""
    program: object
    feeds: List[str] = field(default_factory=list)
    fetch: List[object] = field(default_factory=list)
    inference: bool = False  # no gradients: may run on oneDNN (onednn.place_inference)


class Runner:
    def __init__(self, place=None, dtype="float32", depthwise=None):
        """depthwise: 'onednn' moves the depthwise convs of a CPU program onto oneDNN
        before its first run (default: runtime.depthwise_backend()); the other backends
        are chosen when a program is built (nets/ops.py).  Float32 inference programs run
        on oneDNN where onednn.for_inference says so."""
        self.dtype = np.dtype(dtype)  # floating feeds and values are cast to it
        self.place = place if place is not None else get_place()
        self.scope = paddle.static.Scope()
        self.exe = paddle.static.Executor(self.place)
        depthwise = depthwise or depthwise_backend()
        self._onednn = depthwise == "onednn" and isinstance(self.place, paddle.CPUPlace)
        self._onednn_inference = self.dtype == np.float32 and onednn.for_inference(self.place)
        self._placed = {}  # id of a program whose kernels were chosen -> its oneDNN op count

    def run(self, prog, **feed):
        """Run a `Prog` with numpy feeds by name, exactly those it declares; returns its
        fixed fetch list as numpy.  A missing or undeclared feed is a ValueError: a
        misspelt name would otherwise be ignored."""
        missing = set(prog.feeds) - set(feed)
        if missing:
            raise ValueError(f"missing feeds {sorted(missing)}")
        undeclared = set(feed) - set(prog.feeds)
        if undeclared:
            raise ValueError(f"feeds {sorted(undeclared)} not declared by the program, which "
                             f"reads {sorted(prog.feeds)}")
        feed = {k: self._cast(v) for k, v in feed.items()}
        if id(prog.program) not in self._placed:  # before the first run fixes the kernels
            self._placed[id(prog.program)] = (
                onednn.place_inference(prog) if prog.inference and self._onednn_inference
                else onednn.place_depthwise(prog.program) if self._onednn else 0)
        # a program holding oneDNN ops runs one op at a time: its kernels get every core
        on_onednn = prog.inference and self._placed[id(prog.program)]
        with paddle.static.scope_guard(self.scope), contextlib.ExitStack() as stack:
            if on_onednn:
                stack.enter_context(onednn.threads())
                stack.enter_context(onednn.without_inplace())
            out = self.exe.run(prog.program, feed=feed, fetch_list=prog.fetch,
                               scope=self.scope)
        return [np.asarray(o) for o in out]

    def run_startup(self, startup):
        with paddle.static.scope_guard(self.scope):
            self.exe.run(startup, scope=self.scope)

    def get(self, name):
        """A copy of a scope variable as numpy."""
        var = self.scope.find_var(name)
        if var is None:
            raise KeyError(f"no variable {name!r} in the scope")
        return np.array(var.get_tensor())

    def set(self, name, value):
        var = self.scope.find_var(name)
        if var is None:
            raise KeyError(f"no variable {name!r} in the scope")
        var.get_tensor().set(np.ascontiguousarray(self._cast(value)), self.place)

    def set_all(self, values):
        for name, value in values.items():
            self.set(name, value)

    def _cast(self, value):
        value = np.asarray(value)
        return value.astype(self.dtype) if value.dtype.kind == "f" else value
