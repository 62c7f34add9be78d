"""darts-paddle: DARTS and discretization-aware architecture search on Paddle static graph.

Importing the package does not import paddle: the runtime settings (threads, allocator)
must be applied first, see `darts_paddle.runtime`.
"""

__version__ = "0.1.0"
