"""NAS-Bench-201's own DARTS search network in PyTorch, for the side-by-side benchmark
(bench/compare_torch.py --space nb201): xautodl's TinyNetworkDarts (pip install
xautodl==1.0.0 --no-deps: its other requirements are for its data and training scripts,
and would pin an old numpy), imported, not copied, behind the interface architect.py's
TorchArchitect reads.

Its DARTS-V1 and DARTS-V2 scripts (AutoDL-Projects, exps/NAS-Bench-201-algos) take the
same steps as architect.py: the first order backpropagates the validation loss into the
alphas; the second order unrolls w' = w - eta (mu m + dL/dw + lambda w) with the
momentum buffer m, and subtracts eta times the central difference of the alpha gradients
at w +- R v, R = 0.01 / ||v||.  Their weights take SGD with Nesterov's momentum and weight
decay 5e-4 (configs/nas-benchmark/algos/DARTS.config).  Two differences, both in PyTorch's
favour and below the noise: architect.py refills one copy of the network for w' where
DARTS-V2 deep-copies it every step, and the weight step's gradient clip spans the weights
only where theirs also counts the alphas' gradient.
"""

import torch

from xautodl.models.cell_operations import NAS_BENCH_201
from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts

WEIGHT_DECAY = 5e-4


class SearchNetwork(torch.nn.Module):
    """TinyNetworkDarts as TorchArchitect sees a supernet: logits out, the weights and the
    alphas apart (xautodl's network returns (features, logits) and has get_weights and
    get_alphas)."""

    def __init__(self, C=16, N=5, num_classes=10):
        super().__init__()
        self.net = TinyNetworkDarts(C, N, max_nodes=4, num_classes=num_classes,
                                    search_space=NAS_BENCH_201, affine=False,
                                    track_running_stats=True)

    def forward(self, x):
        return self.net(x)[1]

    def weight_parameters(self):
        return self.net.get_weights()

    def arch_parameters(self):
        return self.net.get_alphas()


def weight_optimizer(model, learning_rate=0.025, momentum=0.9):
    return torch.optim.SGD(model.weight_parameters(), learning_rate, momentum=momentum,
                           weight_decay=WEIGHT_DECAY, nesterov=True)
