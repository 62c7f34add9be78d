"""An example search method in one file, as a new module of darts_paddle/search/methods/
would be (tests/test_extending.py registers it): DARTS whose op weights are
softmax(alpha / T), T its one flag --alpha_temperature."""

from dataclasses import dataclass

import numpy as np

from darts_paddle.genotype import CELLS, softmax
from darts_paddle.paddle_static import F
from darts_paddle.search.methods import Darts, registry
from darts_paddle.search.methods.graph import const


@registry.register_method
@dataclass
class Tempered(Darts):
    alpha_temperature: float = 1.0

    name = "tempered"
    summary = "DARTS with op weights softmax(alpha / --alpha_temperature) (an example)"
    flags = (registry.Flag("alpha_temperature", "tempered: the T of softmax(alpha / T)",
                           type=float),)

    def op_weights(self, arch, feeds):
        t = const(self.alpha_temperature, arch["alphas_normal"].dtype)
        return {c: F.softmax(arch[f"alphas_{c}"] / t, axis=-1) for c in CELLS}, None

    def op_weights_numpy(self, arch):  # the genotype ranks the same weights
        return {c: softmax(np.asarray(arch[f"alphas_{c}"], np.float64) / self.alpha_temperature)
                for c in CELLS}
