"""Loss terms: what a search adds to its loss whatever the method.  A term is a dataclass
whose fields are its options; its own module gives its name, its flags (registry.Flag),
the passes whose loss it joins, what it is fed and its value in the program, and registers
it (registry.register_loss_term).  make_method attaches the terms whose options are in use
to the method (`loss_terms`); the gradient program's forward (programs.py) adds each one
times its gate, a fed 0 or 1 that the architect sets per pass (one program serves every
pass)."""

from . import registry
from .darts import ARCH


class LossTerm:
    name = None  # its registry key; its gate is fed as use_<name>
    flags = ()  # its command-line options (registry.Flag), the dataclass's fields
    passes = (ARCH,)  # the passes whose loss it joins (darts.py: UNROLL, ARCH, ...)
    follows_alpha = False  # is it fed values computed from the current alphas?

    @classmethod
    def in_use(cls, **values):
        """Do its options `values` ({flag: value}) switch it on?  By default: does any
        differ from its default."""
        return registry.differs_from_defaults(cls, values)

    def refusal(self, method):
        """Why it does not combine with `--method method`, or None: it combines with all."""
        return None

    @property
    def gate(self):
        """The feed that switches it on (1) or off (0) in a pass."""
        return "use_" + self.name

    def feed_shapes(self):
        """{feed name: shape} the gradient program reads for it, besides its gate."""
        return {}

    def alpha_feeds(self, arch, feeds):
        """{feed name: array} computed on the host from the alphas `arch` (raw values) and
        the epoch's `feeds`, where `follows_alpha`."""
        return {}

    def loss(self, arch, weights, feeds):
        """The term, a scalar, from the architecture parameters, the method's op weights
        {cell: W} of the pass and its own fed values (variables by name)."""
        raise NotImplementedError
