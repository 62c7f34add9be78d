"""An example loss term in one file, as a new module of darts_paddle/search/methods/ would
be (tests/test_extending.py registers it): --skip_l2 C adds C times the sum of the squared
op weights of skip_connect, over both cells' edges, to the architect's loss, whatever the
method."""

from dataclasses import dataclass

from darts_paddle.genotype import PRIMITIVES
from darts_paddle.paddle_static import paddle
from darts_paddle.search.methods import ARCH, LossTerm, registry
from darts_paddle.search.methods.graph import const

SKIP = PRIMITIVES.index("skip_connect")  # its column of W


@registry.register_loss_term
@dataclass
class SkipL2(LossTerm):
    skip_l2: float = 0.0

    name = "skip_l2"
    flags = (registry.Flag("skip_l2", "add this times the sum of the squared op weights of "
                           "skip_connect to the architect's loss (0: off)", type=float),)
    passes = (ARCH,)

    def loss(self, arch, weights, feeds):
        total = paddle.add_n([paddle.sum(w[:, SKIP] * w[:, SKIP]) for w in weights.values()])
        return const(self.skip_l2, total.dtype) * total
