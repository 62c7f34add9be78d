"""Paddle, configured and in static mode: the one place program-building code imports it
from (`from darts_paddle.paddle_static import paddle, F`).  Importing this module applies
runtime.configure() (threads, allocator, flags: they must be set before Paddle loads), so
no importer can load Paddle unconfigured.  Code that needs no Paddle (genotypes, data,
pictures, argument parsing) does not import it."""

from .runtime import import_paddle

paddle = import_paddle()
F = paddle.nn.functional
