"""The one owner of the Executor, the Scope and the place.

Everything that runs a Program or touches a variable's value goes through a Runner, so the
rest of the code never sees feeds, fetch lists or scopes.
"""

from dataclasses import dataclass, field
from typing import List

import numpy as np

from .onednn import place_depthwise
from .paddle_static import paddle
from .runtime import depthwise_backend, get_place


@dataclass
class Prog:
    """A built Program with the names it is fed and its fixed fetch list (a changed fetch
    list re-prepares the program: docs/paddle.md)."""
    program: object
    feeds: List[str] = field(default_factory=list)
    fetch: List[object] = field(default_factory=list)


class Runner:
    def __init__(self, place=None, dtype="float32", depthwise=None):
        """depthwise: 'onednn' moves the depthwise convs of a CPU program onto oneDNN
        before its first run (default: runtime.depthwise_backend()); the other backends
        are chosen when a program is built (nets/ops.py)."""
        self.dtype = np.dtype(dtype)  # floating feeds and values are cast to it
        self.place = place if place is not None else get_place()
        self.scope = paddle.static.Scope()
        self.exe = paddle.static.Executor(self.place)
        depthwise = depthwise or depthwise_backend()
        self._onednn = depthwise == "onednn" and isinstance(self.place, paddle.CPUPlace)
        self._placed = set()  # ids of the programs whose kernels were chosen

    def run(self, prog, **feed):
        """Run a `Prog` with numpy feeds by name; returns its fixed fetch list as numpy.

        Feeds the program does not read are dropped, so callers can pass one set of knobs
        (search/methods/) to every program."""
        missing = set(prog.feeds) - set(feed)
        if missing:
            raise ValueError(f"missing feeds {sorted(missing)}")
        feed = {k: self._cast(v) for k, v in feed.items() if k in prog.feeds}
        if self._onednn and id(prog.program) not in self._placed:
            place_depthwise(prog.program)  # before the first run, which fixes the kernels
            self._placed.add(id(prog.program))
        with paddle.static.scope_guard(self.scope):
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
