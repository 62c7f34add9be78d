"""The two programs of evaluation training, built once over the same variables:

  train   x, y [, drop_mask] -> loss, top-1, top-5 of the batch;
          loss = CE(logits) + auxiliary_weight * CE(aux logits)   (label smoothing for
          ImageNet), backward, momentum SGD (Nesterov's where the config says) with
          weight decay and global-norm clipping,
          LR from the scheduler (fed by the Executor at every run), BN statistics stored
  infer   x, y -> loss, top-1, top-5, logits with BN in inference mode, no auxiliary head

With world_size > 1 (data-parallel processes, distributed.py) the train program averages
the gradients over the processes before the optimizer (clipping sees the global-batch
gradient) and fetches loss and accuracies averaged over them, so every process logs and
checks the same numbers.

Each program has one fixed fetch list (changing it re-prepares the program,
docs/paddle.md section 2).
Drop path masks are a feed, [paths, B, 1, 1, 1], only when drop_path_prob > 0: see
nets/networks.py for why they are drawn outside the program.
"""

import contextlib
from dataclasses import dataclass
from typing import Optional

from ..distributed import mean_gradients, mean_over_ranks
from ..nb201.arch import SPACE
from ..nets.nb201 import NB201Network
from ..nets.networks import DropPath, build_network
from ..nets.ops import Context, stock_convs
from ..nets.params import SharedVars
from ..optim import weight_optimizer
from ..paddle_static import F, fast_build, merge_repeated_ops, paddle
from .. import onednn
from ..runner import Prog
from ..runtime import get_place
from ..kernels.depthwise import OP as DEPTHWISE_OP


NB201 = SPACE  # the TrainConfig kind of NAS-Bench-201's network, named as its space


@dataclass
class TrainConfig:
    kind: str = "cifar"  # 'cifar', 'imagenet' or NB201 (then `layers` is cells per stage)
    C: int = 36
    layers: int = 20
    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32
    auxiliary: bool = False
    auxiliary_weight: float = 0.4
    drop_path_prob: float = 0.0
    label_smooth: float = 0.0  # 0.1 for ImageNet training
    epochs: int = 600
    learning_rate: float = 0.025
    momentum: float = 0.9
    nesterov: bool = False  # Nesterov's momentum (NAS-Bench-201's training)
    weight_decay: float = 3e-4
    grad_clip: float = 5.0  # 0: no clipping
    schedule: str = "cosine"  # 'cosine' (to 0 over the epochs) or 'step'
    decay_period: int = 1  # 'step': lr * gamma every decay_period epochs
    gamma: float = 0.97


@dataclass
class TrainPrograms:
    config: TrainConfig
    network: object
    startup: object
    shared: SharedVars
    lr_scheduler: object
    train: Optional[Prog]
    infer: Prog
    optimizer_state: dict  # {"velocity/<bank>": scope variable name}

    def initial_values(self, rng):
        values = self.network.initial_values(rng)
        if self.train is None:
            names = self.variable_names()
            values = {k: v for k, v in values.items() if k in names}
        return values

    def variable_names(self):
        """{checkpoint key: scope name} of everything a checkpoint holds."""
        names = {}
        stores = self.network.stores()
        if self.train is None:  # the inference program has no auxiliary head
            stores = stores[:1]
        for params, stats in stores:
            names.update({bank: bank for bank in params.banks})
            names.update({stats.prefix + s: stats.prefix + s for s in (".mean", ".var")})
        if self.train is not None:
            names.update(self.optimizer_state)
        return names


def build_eval_network(cfg, arch):
    """The network `cfg` trains: NAS-Bench-201's for kind NB201 (`arch` its cell's ops),
    else a DARTS evaluation network (`arch` a Genotype)."""
    if cfg.kind != NB201:
        return build_network(cfg.kind, cfg.C, cfg.num_classes, cfg.layers, cfg.auxiliary, arch,
                             cfg.in_channels)
    if cfg.auxiliary or cfg.drop_path_prob:
        raise ValueError("NAS-Bench-201's network has no auxiliary head and no drop path")
    return NB201Network(arch, cfg.C, cfg.layers, cfg.num_classes, cfg.in_channels)


def _scheduler(cfg):

    if cfg.schedule == "cosine":
        return paddle.optimizer.lr.CosineAnnealingDecay(cfg.learning_rate, T_max=cfg.epochs,
                                                        eta_min=0.0)
    return paddle.optimizer.lr.StepDecay(cfg.learning_rate, step_size=cfg.decay_period,
                                         gamma=cfg.gamma)


def _inputs(cfg):

    x = paddle.static.data("x", [-1, cfg.in_channels, cfg.image_size, cfg.image_size], "float32")
    y = paddle.static.data("y", [-1], "int64")
    return x, y, paddle.unsqueeze(y, 1)


def _accuracies(logits, label):
    # with fewer than 5 classes (a folder of 3) every class is among the top 5: the top-k
    # op refuses k above the class count, so top-5 is top-all, which is 100 %
    return [paddle.metric.accuracy(logits, label, k=min(k, logits.shape[1])) for k in (1, 5)]


def criterion(logits, label, label_smooth=0.0):
    """Mean cross entropy against (1 - eps) * one_hot + eps / classes (eps = label_smooth).

    Written out because F.cross_entropy(label_smoothing=...) fails on integer labels in
    Paddle 3.3's PIR mode (label_smooth wants a float one-hot).  With log-probabilities
    log_p: -(target * log_p).sum(1) = (1 - eps) * CE + eps * mean over classes of -log_p.
    """
    ce = F.cross_entropy(logits, label)
    if not label_smooth:
        return ce
    uniform = -paddle.mean(F.log_softmax(logits, axis=1))
    return (1.0 - label_smooth) * ce + label_smooth * uniform


def build_train_program(net, shared, cfg, startup, world_size=1):

    prog = paddle.static.Program()
    feeds = ["x", "y"]
    with paddle.static.program_guard(prog, startup):
        x, _, label = _inputs(cfg)
        drop = None
        if cfg.drop_path_prob > 0:
            feeds.append("drop_mask")
            drop = DropPath(paddle.static.data("drop_mask", [net.drop_paths, -1, 1, 1, 1],
                                               "float32"))
        banks = net.materialize(shared, training=True)
        logits, logits_aux = net(x, Context(training=True), drop)

        loss = criterion(logits, label, cfg.label_smooth)
        if logits_aux is not None:
            loss = loss + cfg.auxiliary_weight * criterion(logits_aux, label, cfg.label_smooth)
        one = paddle.full([1], 1.0, "float32")
        for _, stats in net.stores():
            stats.write_back(one)
        scheduler = _scheduler(cfg)
        opt = weight_optimizer(scheduler, banks, cfg)
        if world_size == 1:
            opt.minimize(loss)
            fetch = [loss, *_accuracies(logits, label)]
        else:
            opt.apply_gradients(mean_gradients(opt.backward(loss), world_size))
            fetch = mean_over_ranks([loss, *_accuracies(logits, label)], world_size)
    velocity = {f"velocity/{bank}": value.name
                for bank, value in opt._accumulators["velocity"].items()}
    return Prog(merge_repeated_ops(prog), feeds, fetch), scheduler, velocity


def build_infer_program(net, shared, cfg, startup):
    """On oneDNN (onednn.for_inference) with Paddle's depthwise conv2d, which oneDNN runs."""
    prog = paddle.static.Program()
    convs = stock_convs() if onednn.for_inference(get_place()) else contextlib.nullcontext()
    with paddle.static.program_guard(prog, startup), convs:
        x, _, label = _inputs(cfg)
        net.materialize(shared, training=False)
        logits, _ = net(x, Context(training=False))
        loss = criterion(logits, label)
        fetch = [loss, *_accuracies(logits, label), logits]
    return Prog(merge_repeated_ops(prog), ["x", "y"], fetch, inference=True)


class _AsParameters(SharedVars):
    """Shared variables that are all parameters: BN statistics become frozen parameters."""

    def buffer(self, name, shape, dtype=None):
        return self.parameter(name, shape, trainable=False)


def build_export_program(programs):
    """x -> logits, for paddle.static.save_inference_model.

    A persistable buffer (the BN statistics) appears in a PIR program as a persistable data
    op, which save_inference_model lists as an input of the model; here the statistics are
    declared as frozen parameters under the same names, so the exported model has exactly
    one input and takes their values from the scope like the weights.  Its depthwise convs
    are Paddle's conv2d (`stock_convs`): the predictor and paddle2onnx know no custom op."""
    cfg, net = programs.config, programs.network
    prog = paddle.static.Program()
    with paddle.static.program_guard(prog, paddle.static.Program()), stock_convs():
        x = paddle.static.data("x", [-1, cfg.in_channels, cfg.image_size, cfg.image_size],
                               "float32")
        net.materialize(_AsParameters(), training=False)
        logits, _ = net(x, Context(training=False))
    return Prog(prog, ["x"], [x, logits])


@fast_build
def build_train_programs(cfg: TrainConfig, arch, train=True,
                         world_size=1) -> TrainPrograms:
    """Both programs (train=False: the inference program only, for --eval_only) of the
    network `build_eval_network` makes of `arch`; world_size: the number of data-parallel
    processes running the train program."""
    net = build_eval_network(cfg, arch)
    shared, startup = SharedVars(), paddle.static.Program()
    train_prog, scheduler, velocity = None, _scheduler(cfg), {}
    if train:
        train_prog, scheduler, velocity = build_train_program(net, shared, cfg, startup,
                                                              world_size)
    infer = build_infer_program(net, shared, cfg, startup)
    return TrainPrograms(cfg, net, startup, shared, scheduler, train_prog, infer, velocity)


def op_count(prog):
    return len(prog.program.global_block().ops)


def multiply_adds(prog):
    """Multiply-adds of one sample's forward pass: every conv and matmul of the program.

    Read from the built program (output and weight shapes), so it counts what runs."""
    total = 0
    for op in prog.program.global_block().ops:
        name = op.name().split(".")[-1]  # pd_op, onednn_op (onednn.py) or custom_op
        if name in ("conv2d", "depthwise_conv2d"):
            out, weight = op.result(0).shape, op.operand_source(1).shape
            total += _prod(out[1:]) * _prod(weight[1:])
        elif name == DEPTHWISE_OP:  # one input list [x, w_0, w_1, ...] (kernels/depthwise.py)
            out, inputs = op.result(0).shape, op.operand_source(0).get_defining_op()
            total += _prod(out[2:]) * sum(_prod(inputs.operand_source(i).shape)
                                          for i in range(1, inputs.num_operands()))
        elif name == "matmul":
            a, out = op.operand_source(0).shape, op.result(0).shape
            total += _prod(out[1:]) * a[-1]
    return total


def _prod(dims):
    result = 1
    for d in dims:
        result *= int(d)
    return result
