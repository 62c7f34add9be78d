"""Weights and BN statistics of a network, kept in a few large persistable tensors.

Why: the architect's second-order step works on "the weight set" as a vector
(w' = w - eta*(...), w +/- R*v, ||v||, restore), the optimizer updates all weights, and
Paddle's cost of building and preparing a program grows faster than its op count.  So the
weights are not hundreds of parameters but a handful of *banks*: every weight whose shape
has the same trailing dimensions (all depthwise 3x3 kernels [n, 1, 3, 3], all 1x1 convs
reading 64 channels [n, 64, 1, 1], ...) is a slice of one bank along axis 0.  A program
binds them with one `split` per bank (whose backward is one `concat`), no reshapes; vector
work and the optimizer are a few ops per bank.

Network code declares its weights while it is constructed (`declare`), like `__init__` of
an nn.Layer, and reads `entry.value` in its forward.  Every Program that runs the network
calls `materialize()` once, so all programs share the same scope variables by name."""

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from ..paddle_static import paddle
from paddle.pir import core  # noqa: E402 (after paddle_static: Paddle loads configured)


@dataclass
class Entry:
    name: str
    shape: Tuple[int, ...]
    init: str  # 'uniform' (+-1/sqrt(fan_in), PyTorch's default), 'ones', 'zeros'
    fan_in: int
    bank: str = ""
    offset: int = 0  # first row in its bank (axis 0)
    value: object = None  # the tensor in the program being built

    @property
    def size(self):
        return int(np.prod(self.shape))


def bank_name(prefix, trailing):
    return f"{prefix}.{'x'.join(map(str, trailing)) if trailing else 'vector'}"


@dataclass
class ParamStore:
    """Trainable weights of one network, grouped into banks named `<prefix>.<trailing dims>`."""

    prefix: str
    entries: List[Entry] = field(default_factory=list)
    banks: "OrderedDict[str, list]" = field(default_factory=OrderedDict)
    _by_name: dict = field(default_factory=dict)

    def declare(self, name, shape, init="uniform", fan_in=None):
        if name in self._by_name:
            raise ValueError(f"weight {name!r} declared twice")
        shape = tuple(int(s) for s in shape)
        if fan_in is None:  # conv [out, in/groups, kh, kw] and linear [in, out] alike
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
        bank = bank_name(self.prefix, shape[1:])
        members = self.banks.setdefault(bank, [])
        entry = Entry(name, shape, init, fan_in, bank, sum(e.shape[0] for e in members))
        members.append(entry)
        self.entries.append(entry)
        self._by_name[name] = entry
        return entry

    @property
    def size(self):
        return sum(e.size for e in self.entries)

    def bank_shapes(self):
        return {bank: [sum(e.shape[0] for e in members), *members[0].shape[1:]]
                for bank, members in self.banks.items()}

    def __getitem__(self, name):
        return self._by_name[name]

    def materialize(self, shared):
        """Create (or look up) the banks in the current program; bind every entry."""
        banks = []
        for bank, shape in self.bank_shapes().items():
            members = self.banks[bank]
            tensor = shared.parameter(bank, shape)
            pieces = (paddle.split(tensor, [e.shape[0] for e in members], axis=0)
                      if len(members) > 1 else [tensor])
            for entry, piece in zip(members, pieces):
                entry.value = piece
            banks.append(tensor)
        return banks

    def initial_values(self, rng):
        """{bank: numpy array}: deterministic under the seed and independent of Paddle."""
        values = {}
        for bank, shape in self.bank_shapes().items():
            values[bank] = array = np.empty(shape, np.float32)
            for e in self.banks[bank]:
                part = array[e.offset:e.offset + e.shape[0]]
                if e.init == "uniform":
                    bound = 1.0 / np.sqrt(e.fan_in)
                    part[...] = rng.uniform(-bound, bound, part.shape)
                else:
                    part[...] = 1.0 if e.init == "ones" else 0.0
        return values

    def unbank(self, banks):
        """{weight name: array view} from {bank: array} (checkpoints, tests, conversion)."""
        return {e.name: banks[e.bank][e.offset:e.offset + e.shape[0]] for e in self.entries}


@dataclass
class BNStats:
    name: str
    channels: int
    offset: int
    mean: object = None
    var: object = None
    new_mean: object = None
    new_var: object = None


@dataclass
class StatsStore:
    """Running means and variances of all BNs, as two flat buffers `<prefix>.mean/.var`.

    In training mode the BN op returns the updated statistics; `write_back` stores them
    gated by a fed scalar, so the architect's virtual and perturbed passes can run the
    same program without touching the statistics (gate 0).
    """

    prefix: str
    entries: List[BNStats] = field(default_factory=list)

    def declare(self, name, channels):
        entry = BNStats(name, int(channels), self.size)
        self.entries.append(entry)
        return entry

    @property
    def size(self):
        return sum(e.channels for e in self.entries)

    def materialize(self, shared):

        sizes = [e.channels for e in self.entries]
        self._mean = shared.buffer(self.prefix + ".mean", [self.size])
        self._var = shared.buffer(self.prefix + ".var", [self.size])
        for e, m, v in zip(self.entries, paddle.split(self._mean, sizes),
                           paddle.split(self._var, sizes)):
            e.mean, e.var, e.new_mean, e.new_var = m, v, None, None

    def write_back(self, gate):
        """stats <- stats + gate * (updated - stats), for every BN run in training mode."""
        missing = [e.name for e in self.entries if e.new_mean is None]
        if missing:
            raise RuntimeError(f"BN statistics never updated: {missing[:5]}")
        for flat, new in ((self._mean, [e.new_mean for e in self.entries]),
                          (self._var, [e.new_var for e in self.entries])):
            paddle.assign(flat + gate * (paddle.concat(new) - flat), output=flat)

    def initial_values(self):
        return np.zeros(self.size, np.float32), np.ones(self.size, np.float32)


def initial_values(stores, rng):
    """{variable: array} of a network's (ParamStore, StatsStore) pairs: weights from the
    seeded generator, BN mean 0 / variance 1."""
    values = {}
    for params, stats in stores:
        values.update(params.initial_values(rng))
        values[stats.prefix + ".mean"], values[stats.prefix + ".var"] = stats.initial_values()
    return values


def gradient_name(name):
    """The scope name of the gradient buffer of variable `name`."""
    return "G_" + name


class SharedVars:
    """Persistable variables shared by several Programs, created once in `startup`.

    The first program that asks for a name creates the variable (its initializer goes to
    the startup program); later programs declare the same name so the Executor binds the
    same scope variable.  Values are filled by the runner from numpy after startup.
    Variables an optimizer creates are known here by an alias; a program that reads one
    gets it from the optimizer's builder (`bind`), never by creating a buffer of its name,
    which would hold zeros the optimizer never sees.
    """

    def __init__(self, dtype="float32"):
        self.dtype = dtype  # float64 lets tests compare gradients with finite differences
        self._first = {}
        self._aliases = set()

    def parameter(self, name, shape, trainable=True):
        """The parameter `name`: created with `shape` by the first program that asks."""
        if name not in self._first:
            _check_creatable(name, shape)
            p = paddle.static.create_parameter(
                shape, self.dtype, name=name,
                default_initializer=paddle.nn.initializer.Constant(0.0))
            p.stop_gradient = not trainable
            self._first[name] = p
            return p
        return core._get_parameter(paddle.static.default_main_program(), self._first[name])

    def buffer(self, name, shape, dtype=None):
        """The buffer `name`: created with `shape` (zeros) by the first program that asks.
        ValueError for an optimizer's variable (`alias`)."""
        if name in self._aliases:
            raise ValueError(f"{name!r} is an optimizer's variable: read it through the value "
                             "its builder returns (SharedVars.bind)")
        if name not in self._first:
            _check_creatable(name, shape)
            b = core.create_persistable_value(
                dtype or self.dtype, shape, name=name, initializer=paddle.nn.initializer.Constant(0.0))
            self._first[name] = b
            return b
        return core._get_persistable_value(paddle.static.default_main_program(),
                                           self._first[name])

    def gradient(self, name, shape=None):
        """The buffer the gradient program writes dL/d`name` into (read by the optimizers)."""
        return self.buffer(gradient_name(name), shape)

    def alias(self, name, value):
        """Make a persistable variable an optimizer created known by `name`.  ValueError if
        a program already created `name`: it reads zeros, not the optimizer's values (build
        the optimizer's program first)."""
        if name in self._first:
            raise ValueError(f"{name!r} was created before the optimizer that owns it: build "
                             "the optimizer's program first and pass its variables on")
        self._first[name] = value
        self._aliases.add(name)

    @staticmethod
    def bind(value):
        """A persistable variable made in another program (an optimizer's), declared in the
        program being built."""
        return core._get_persistable_value(paddle.static.default_main_program(), value)

    def get(self, name):
        return self._first[name]

    def scope_name(self, name):
        """The scope variable behind `name` (differs for aliases such as momentum_*)."""
        return self._first[name].name

    def names(self):
        return list(self._first)


def _check_creatable(name, shape):
    if shape is None:  # a reader asking before the program that gives the shape was built
        raise ValueError(f"no variable {name!r} yet: build the program that creates it first")
