"""Data parallel over the processes `python -m paddle.distributed.launch` starts: the
evaluation training (train/) and the search (search/).

What Paddle 3.3.1 offers in static PIR mode (tried, see tests/test_distributed.py):
- fleet's static collective path (`fleet.init(is_collective=True)`,
  `fleet.distributed_optimizer(opt).minimize(loss)`) is legacy-IR code: under PIR it stops
  in fleet.py at `startup_program.clone(for_test=False)` ("clone(): incompatible function
  arguments"), and legacy IR cannot differentiate the non-affine BN (docs/paddle.md
  sections 3 and 9);
- Paddle's static collective ops do run under PIR: `paddle.distributed.all_reduce` and
  `broadcast` append `pd_op.all_reduce_` / `pd_op.broadcast_` on ring 0, executed with the
  communicator registered for ring "0" in Paddle's CommContextManager (NCCL on a GPU,
  gloo on the CPU).
So every process builds the same programs; the train program, and every pass of the
search's gradient program, sum the gradients of all processes and divide by their number
before anything reads them (clipping, weight decay, momentum, Adam, the architect's
vectors).  Training broadcasts rank 0's state before the first step (as
DistributedDataParallel does); the search needs no broadcast, as every process starts from
the same seed or checkpoint.  --batch_size is the global batch, as with the original's
nn.DataParallel: each process trains on a contiguous 1/N of every batch, BN normalises over that part, and the
BN running statistics that are saved and evaluated are rank 0's (DataParallel's are those
of the replica on device 0).

gloo gives up on a collective after a fixed 30 s.  Where processes do unequal work (rank 0
evaluates and saves after every epoch) the others wait at a barrier on Paddle's TCP store,
which has no such limit.
"""

import os
import time
from dataclasses import dataclass
from typing import Optional

from .paddle_static import paddle

import paddle.distributed as dist  # noqa: E402 (after paddle_static: Paddle loads configured)
from paddle.base import core  # noqa: E402

from .errors import UserError
from .runner import Prog

LAUNCH = "python -m paddle.distributed.launch --gpus 0,1 train.py (or train_search.py) ..."


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_size: int = 1  # processes on this machine
    gpu: Optional[int] = None  # the device launch selected for this process (FLAGS_selected_gpus)

    @property
    def distributed(self):
        return self.size > 1

    @property
    def is_main(self):
        """Rank 0 alone logs to the file, shows progress, evaluates and writes files."""
        return self.rank == 0

    def part(self, n):
        """The slice of a global batch of n samples this process trains on."""
        if n % self.size:
            raise ValueError(f"{n} samples cannot be split over {self.size} processes")
        per = n // self.size
        return slice(self.rank * per, (self.rank + 1) * per)


SINGLE = World()


def _env_int(env, key, default):
    text = env.get(key)
    if text in (None, ""):
        return default
    try:
        return int(text)
    except ValueError:
        raise UserError(f"environment variable {key}={text!r} is not an integer: start "
                        f"multi-process training with {LAUNCH}") from None


def world_from_env(env=None) -> World:
    """The World described by the variables paddle.distributed.launch sets (one process,
    the default, when they are absent)."""
    env = os.environ if env is None else env
    size = _env_int(env, "PADDLE_TRAINERS_NUM", 1)
    if size <= 1:
        return SINGLE
    rank = _env_int(env, "PADDLE_TRAINER_ID", None)
    if rank is None or not 0 <= rank < size:
        raise UserError(f"PADDLE_TRAINERS_NUM={size} but PADDLE_TRAINER_ID={rank}: start "
                        f"multi-process training with {LAUNCH}, or unset PADDLE_TRAINERS_NUM")
    if not (env.get("PADDLE_MASTER") or env.get("PADDLE_TRAINER_ENDPOINTS")):
        raise UserError(f"PADDLE_TRAINERS_NUM={size} is set but PADDLE_MASTER is not: start "
                        f"multi-process training with {LAUNCH}, or unset PADDLE_TRAINERS_NUM")
    first = env.get("FLAGS_selected_gpus", "").split(",")[0].strip()
    gpu = int(first) if first.isdigit() else None
    return World(rank, size, _env_int(env, "PADDLE_LOCAL_SIZE", size), gpu)


def check_batch_size(batch_size, world):
    if batch_size % world.size:
        raise UserError(
            f"--batch_size {batch_size} cannot be split evenly over {world.size} processes: "
            f"pass a multiple of {world.size} (--batch_size is the global batch; every "
            f"process trains on batch_size / {world.size} of it)")


def choose_gpu(world, gpu_count):
    """This process's GPU id, or None for the CPU (gloo); UserError if launch gave it a
    device that does not exist or more processes than this machine has GPUs."""
    if world.gpu is None or gpu_count == 0:
        return None
    if world.local_size > gpu_count:
        raise UserError(
            f"{world.local_size} processes on this machine but only {gpu_count} GPU(s) "
            f"visible: pass --nproc_per_node {gpu_count} (or --gpus with at most {gpu_count} "
            "ids) to paddle.distributed.launch")
    if world.gpu >= gpu_count:
        raise UserError(
            f"process {world.rank} was given GPU {world.gpu} but only GPUs "
            f"0-{gpu_count - 1} are visible: pass --gpus with existing ids to "
            "paddle.distributed.launch (and check CUDA_VISIBLE_DEVICES)")
    return world.gpu


def start(world):
    """Create the ring-0 communicator the collective ops use; returns this process's place."""
    cuda = paddle.is_compiled_with_cuda()
    gpu = choose_gpu(world, paddle.device.cuda.device_count() if cuda else 0)
    if gpu is not None:
        # a private API, wanted only on the GPU path
        from paddle.distributed.collective import _init_parallel_env

        _init_parallel_env("nccl")  # reads FLAGS_selected_gpus, as choose_gpu did
        return paddle.CUDAPlace(gpu)
    # _init_parallel_env("gloo") would do this, but fails on a CPU build (no device id)
    core.CommContextManager.create_gloo_comm_context(core.create_or_get_global_tcp_store(),
                                                     "0", world.rank, world.size)
    return paddle.CPUPlace()


def barrier(world, name, poll=0.05):
    """Return once every process has called barrier(world, name); `name` must be new for
    every use.  Polls the TCP store rather than waiting in a gloo collective (30 s limit)
    or in store.wait (the store's 900 s limit): rank 0 may evaluate for longer."""
    if not world.distributed:
        return
    store = core.create_or_get_global_tcp_store()
    key = f"darts_paddle/barrier/{name}"
    store.add(key, 1)
    while store.add(key, 0) < world.size:
        time.sleep(poll)


# --------------------------------------------------------------------------- programs

def mean_over_ranks(values, size):
    """Each value summed over all processes (in place) and divided by their number."""
    means = []
    for value in values:
        dist.all_reduce(value)  # pd_op.all_reduce_: later readers of `value` see the sum
        means.append(value * (1.0 / size))
    return means


def mean_gradients(params_grads, size):
    """(parameter, gradient) pairs with each gradient averaged over the processes."""
    params = [p for p, _ in params_grads]
    return list(zip(params, mean_over_ranks([g for _, g in params_grads], size)))


def build_broadcast_program(variables):
    """A program that overwrites every given scope variable ({name: numpy array of its
    shape and dtype}) with rank 0's value."""
    prog = paddle.static.Program()
    with paddle.static.program_guard(prog, paddle.static.Program()):
        for name, value in variables.items():
            # a persistable data value binds the scope variable of that name
            var = paddle.static.data(name, list(value.shape), str(value.dtype))
            var.persistable = True
            dist.broadcast(var, src=0)
    return Prog(prog)


def collective_ops(prog):
    """Names of the collective ops in a Prog (tests, logs)."""
    return [op.name() for op in prog.program.global_block().ops
            if op.name() in ("pd_op.all_reduce_", "pd_op.broadcast_")]
