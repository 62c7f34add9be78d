"""Convert a PyTorch DARTS checkpoint (the original release's layout) into ours:

    python -m darts_paddle.convert_torch cifar10_model.pt darts_v2.npz --arch DARTS_V2
    python -m darts_paddle.convert_torch imagenet_model.pt in.npz --arch DARTS_V2 --dataset imagenet
    python -m darts_paddle.convert_torch weights.pt supernet.npz --search [--alphas alphas.pt]

Input: a `torch.save(model.state_dict())` file (train.py), `{'state_dict': ..., 'epoch': ...}`
(train_imagenet.py), keys possibly prefixed `module.` (DataParallel), of NetworkCIFAR,
NetworkImageNet or the search network (model_search.Network).  Read with
`torch.load(weights_only=True)`: a checkpoint cannot run code.

Output: an evaluation network becomes the checkpoint train.py writes (weights in banks, BN
statistics in a StatsStore, see train/state.py): `train.py --eval_only --model_path OUT`
evaluates it and `train.py --init_from OUT` trains from it.  The search network becomes a
"search weights" file (weights, BN statistics, alphas; search/state.py WEIGHTS_FORMAT) that
`train_search.py --init_from OUT` starts a search from.

The network is built from the flags, each inferred from the tensors when not given (layers
from the cell keys, C and the input channels from the stem, the auxiliary head from its
keys, the data set from the class count); the genotype cannot be inferred and is --arch.
Every source tensor must be used exactly once, every target filled, all shapes equal;
otherwise one UserError lists what does not fit and the likely cause.
"""

import argparse
import logging
import os
import re
from dataclasses import dataclass

import numpy as np

from ..train import flags, loop
from ..storage.checkpoint import save_checkpoint
from ..train import state as train_state
from ..search.state import WEIGHTS_FORMAT
from ..cli import run_main
from ..data.flags import DATASETS
from ..run.logs import setup_logging
from ..data import get_spec
from ..errors import UserError
from ..genotype import reduction_layers
from ..registry import resolve_arch
from ..nets.networks import build_network
from ..search.supernet import SearchNetwork
from .torch_checkpoint import ALPHA_KEYS, ALPHAS_HINT, read_alphas, read_torch_checkpoint
from .layout import eval_assignments, search_assignments, target_shapes

log = logging.getLogger("darts_paddle.convert")

MIXED_OP_KEY = re.compile(r"cells\.\d+\._ops\.\d+\._ops\.")  # only the search network has it


# --------------------------------------------------------------------------- the source network

@dataclass
class Facts:
    """What the tensors say about the network that produced them."""

    kind: str  # 'cifar', 'imagenet' or 'search'
    C: int
    layers: int
    num_classes: int
    in_channels: int
    auxiliary: bool


def source_facts(state, path):
    if "stem0.3.weight" in state:
        kind, C, stem = "imagenet", state["stem0.3.weight"].shape[0], state["stem0.0.weight"]
    elif "stem.0.weight" in state:
        stem = state["stem.0.weight"]
        kind = "search" if any(MIXED_OP_KEY.match(k) for k in state) else "cifar"
        C = stem.shape[0] // 3
    else:
        raise UserError(f"{path} is not a DARTS network in the PyTorch layout (no stem.0.weight "
                        "or stem0.0.weight); convert checkpoints of NetworkCIFAR, "
                        "NetworkImageNet or model_search.Network")
    cells = {int(m.group(1)) for m in map(re.compile(r"cells\.(\d+)\.").match, state) if m}
    if "classifier.weight" not in state or not cells:
        raise UserError(f"{path} has no classifier.weight or no cells.N tensors: not a whole "
                        "DARTS network")
    return Facts(kind, int(C), max(cells) + 1, int(state["classifier.weight"].shape[0]),
                 int(stem.shape[1]), any(k.startswith("auxiliary_head.") for k in state))


# --------------------------------------------------------------------------- filling

@dataclass
class Problems:
    missing: list
    unused: list
    shapes: list  # (key, source shape, expected shape)

    def __bool__(self):
        return bool(self.missing or self.unused or self.shapes)

    def describe(self):
        def some(items, n=3):
            more = f", ... ({len(items)} in all)" if len(items) > n else ""
            return ", ".join(items[:n]) + more

        parts = []
        if self.missing:
            parts.append(f"missing {some(self.missing)}")
        if self.unused:
            parts.append(f"not used {some(self.unused)}")
        if self.shapes:
            parts.append("other shapes " + some([f"{k} {list(a)} (needs {list(b)})"
                                                 for k, a, b in self.shapes], 3))
        return "; ".join(parts)


def _source_value(state, assign):
    values = [state[k] for k in assign.sources]
    value = values[0] if len(values) == 1 else np.mean(values, axis=0)
    if len(values) > 1 and not np.allclose(values, value, rtol=1e-5, atol=1e-6):
        # training gives these BNs the same statistics; only a hand-edited file differs
        log.warning("BN statistics %s... differ between edges that share one BN here: "
                    "averaged", assign.sources[0])
    return value.T if assign.slot.transpose else value


def fill(state, assigns, shapes):
    """-> ({array: values}, Problems).  Float64 sources stay float64, others become float32."""
    dtype = np.float64 if any(v.dtype == np.float64 for v in state.values()) else np.float32
    arrays = {var: np.zeros(shape, dtype) for var, shape in shapes.items()}
    filled = {var: np.zeros(shape[0], np.int64) for var, shape in shapes.items()}
    used, problems = {}, Problems([], [], [])
    for a in assigns:
        for key in a.sources:
            used[key] = used.get(key, 0) + 1
        slot = a.slot
        wanted = slot.shape[::-1] if slot.transpose else slot.shape  # in PyTorch's terms
        absent = [k for k in a.sources if k not in state]
        wrong = [(k, state[k].shape, wanted) for k in a.sources
                 if k in state and state[k].shape != wanted]
        problems.missing += absent
        problems.shapes += wrong
        if not (absent or wrong):
            arrays[slot.var][slot.start:slot.start + slot.shape[0]] = _source_value(state, a)
            filled[slot.var][slot.start:slot.start + slot.shape[0]] += 1
    twice = [k for k, n in used.items() if n > 1]
    gaps = [var for var, rows in filled.items() if (rows != 1).any()]
    if twice or (gaps and not problems):
        raise RuntimeError(f"torch layout bug: sources used twice {twice[:3]}, "
                           f"targets not filled once {gaps[:3]}")
    problems.unused = sorted(set(state) - set(used))
    return arrays, problems


# --------------------------------------------------------------------------- the target network

@dataclass
class Target(Facts):
    """The network the tensors are converted into (flags, else what the tensors say)."""

    dataset: str
    genotype: object = None
    arch: str = ""

    def describe(self):
        if self.kind == "search":
            what = "search network"
        else:
            name = "given genotype" if self.arch.startswith("Genotype(") else self.arch
            what = f"{'ImageNet' if self.kind == 'imagenet' else 'CIFAR'} network {name}"
        aux = ", auxiliary head" if self.auxiliary else ""
        return (f"{what} (C {self.C}, {self.layers} layers{aux}, {self.num_classes} classes, "
                f"{self.in_channels} input channels)")


def default_dataset(facts):
    if facts.kind == "imagenet":
        return "imagenet"
    if facts.in_channels == 1:
        return "fashion_mnist"
    return "cifar100" if facts.num_classes == 100 else "cifar10"


def resolve_target(args, facts):

    path = args.input
    if facts.kind == "search" and not args.search:
        raise UserError(f"{path} holds a search network (mixed ops cells.N._ops.E._ops.K): "
                        "add --search")
    if facts.kind != "search" and args.search:
        raise UserError(f"{path} holds an evaluation network, not a search network: drop "
                        "--search and pass the genotype with --arch")
    if not args.search and not args.arch:
        raise UserError("--arch is needed: the genotype the network was trained with (a name "
                        "in genotypes.py such as DARTS_V2, a Genotype(...) literal or a JSON)")
    dataset = args.dataset or default_dataset(facts)
    if args.search and dataset not in DATASETS:
        raise UserError(f"--dataset {dataset}: the search runs on {', '.join(DATASETS)}")
    spec = get_spec(dataset)
    kind = "search" if args.search else ("imagenet" if dataset == "imagenet" else "cifar")
    return Target(kind, args.init_channels or facts.C, args.layers or facts.layers,
                  spec.num_classes, spec.in_channels,
                  facts.auxiliary if args.auxiliary is None else args.auxiliary, dataset,
                  None if args.search else resolve_arch(args.arch), args.arch or "")


def build_target(target):
    if target.kind == "search":
        return SearchNetwork(target.C, target.num_classes, target.layers, target.in_channels)
    return build_network(target.kind, target.C, target.num_classes, target.layers,
                         target.auxiliary, target.genotype, target.in_channels)


# --------------------------------------------------------------------------- diagnosis

def op_in_checkpoint(state, key):
    """The genotype op whose tensors sit at `key` ('cells.0._ops.3.'); None: no weights."""
    if key + "op.5.weight" in state:
        k = state[key + "op.1.weight"].shape[-1]
        return f"sep_conv_{k}x{k}"
    if key + "op.1.weight" in state:
        k = state[key + "op.1.weight"].shape[-1]
        return f"dil_conv_{k}x{k}"
    if key + "conv_1.weight" in state:
        return "skip_connect"
    if key + "1.weight" in state:
        return "conv_7x1_1x7"
    return None


def genotype_causes(state, target):
    """Ops of the genotype that the checkpoint's tensors contradict, cell by cell."""
    found = []
    for i in range(target.layers):
        reduction = i in reduction_layers(target.layers)
        pairs = target.genotype.reduce if reduction else target.genotype.normal
        for k, (op, j) in enumerate(pairs):
            strided = reduction and j < 2
            weightless = op in ("max_pool_3x3", "avg_pool_3x3") or (
                op == "skip_connect" and not strided)
            have = op_in_checkpoint(state, f"cells.{i}._ops.{k}.")
            if have != (None if weightless else op):
                found.append(f"cells.{i}._ops.{k} holds {have or 'no weights (a pool or identity)'}"
                             f" where --arch has {op}")
        extra = f"cells.{i}._ops.{len(pairs)}."
        if any(key.startswith(extra) for key in state):
            found.append(f"cells.{i} has more than the genotype's {len(pairs)} ops")
        if found:
            break
    if found:
        return ["wrong genotype (--arch): " + ", ".join(found[:2])]
    return ["a genotype (--arch) other than the one the network was trained with"]


def likely_causes(state, facts, target):
    causes = []
    if facts.kind != target.kind:
        causes.append("it is an ImageNet network (stem0.*): pass --dataset imagenet"
                      if facts.kind == "imagenet" else
                      f"it is a CIFAR-type network (stem.*): pass --dataset "
                      f"{default_dataset(facts)}")
    if facts.layers != target.layers:
        causes.append(f"it has {facts.layers} cells, --layers says {target.layers}")
    if facts.C != target.C:
        causes.append(f"its stem gives --init_channels {facts.C}, not {target.C}")
    if facts.num_classes != target.num_classes:
        causes.append(f"its classifier has {facts.num_classes} classes, --dataset "
                      f"{target.dataset} has {target.num_classes}")
    if facts.in_channels != target.in_channels:
        causes.append(f"its stem reads {facts.in_channels} input channels, --dataset "
                      f"{target.dataset} has {target.in_channels}")
    if facts.auxiliary != target.auxiliary:
        causes.append("it has an auxiliary head: drop --no-auxiliary" if facts.auxiliary
                      else "it has no auxiliary head: drop --auxiliary")
    if not causes and target.genotype is not None:
        causes += genotype_causes(state, target)
    return causes


# --------------------------------------------------------------------------- conversion

def convert_state(state, target, path="the checkpoint"):
    """{torch key: array} -> ({our checkpoint array: values}, the network built)."""
    search = target.kind == "search"
    if search and not all(k in state for k in ALPHA_KEYS):
        raise UserError(f"{path} has no alphas_normal / alphas_reduce (the original search "
                        "code keeps them outside the state_dict): " + ALPHAS_HINT)
    net = build_target(target)
    assigns = search_assignments(net) if search else eval_assignments(net)
    arrays, problems = fill(state, assigns, target_shapes(net, search))
    if problems:
        causes = likely_causes(state, source_facts(state, path), target)
        raise UserError(f"{path} does not fit the {target.describe()}: {problems.describe()}; "
                        f"likely cause: {'; '.join(causes) or 'check --arch and the flags'}")
    return arrays, net


def _eval_meta(target, source):
    """What train.py writes beside the arrays, for a network that has not trained here."""
    imagenet = target.kind == "imagenet"
    parser = flags.train_imagenet_parser() if imagenet else flags.train_parser()
    args = parser.parse_args(["--dataset", target.dataset, "--init_channels", str(target.C),
                              "--layers", str(target.layers)]
                             + (["--auxiliary"] if target.auxiliary else []))
    cfg = loop.make_config(args, get_spec(target.dataset), target.kind)
    return train_state.metadata(args, cfg, target.genotype, train_state.START,
                                converted_from=source)


def _search_meta(target, source):
    return dict(format=WEIGHTS_FORMAT, dataset=target.dataset,
                config=dict(C=target.C, layers=target.layers, num_classes=target.num_classes,
                            in_channels=target.in_channels),
                converted_from=source)


def convert(args):
    """The command: read, convert, check, write.  Returns the Target."""
    state, extras = read_torch_checkpoint(args.input)
    if args.alphas:
        state.update(read_alphas(args.alphas))
    target = resolve_target(args, source_facts(state, args.input))
    arrays, net = convert_state(state, target, args.input)
    source = {"file": os.path.basename(args.input), "tensors": len(state), **extras}
    meta = (_search_meta if target.kind == "search" else _eval_meta)(target, source)
    save_checkpoint(args.output, arrays, meta)
    print(f"converted {args.input} ({len(state)} tensors) into the {target.describe()}: "
          f"{args.output}")
    print(f"param size = {net.params.size / 1e6:.6f}MB")
    _print_next_steps(args.output, target)
    return target


def _print_next_steps(out, t):
    if t.kind == "search":
        print(f"search from it:  python train_search.py --init_from {out} --dataset {t.dataset} "
              f"--init_channels {t.C} --layers {t.layers}")
        return
    script = train_state.script_for(t.kind)
    shape = f"--dataset {t.dataset} --init_channels {t.C} --layers {t.layers}"
    print(f"evaluate:  python {script} --eval_only --model_path {out} --data DATA")
    print(f"fine-tune: python {script} --init_from {out} {shape}"
          f"{' --auxiliary' if t.auxiliary else ''} --data DATA")


def parser():
    p = argparse.ArgumentParser(
        prog="python -m darts_paddle.convert_torch",
        description="Convert a PyTorch DARTS checkpoint (original release layout) into a "
                    "darts-paddle checkpoint")
    p.add_argument("input", help="the .pt / .pth file (a state_dict or {'state_dict': ...})")
    p.add_argument("output", help="the .npz to write")
    p.add_argument("--arch", default=None,
                   help="genotype of an evaluation network: a name in genotypes.py, a "
                        "Genotype(...) literal or a genotype JSON")
    p.add_argument("--search", action="store_true",
                   help="the file holds the search network (model_search.Network)")
    p.add_argument("--alphas", default=None,
                   help="the search's alphas when the file lacks them: a .pt of "
                        "model.arch_parameters() or {'alphas_normal','alphas_reduce'}, a .npy "
                        "[2, 14, 8] or a .npz")
    p.add_argument("--dataset", default=None,
                   help="data set the network classifies (default: from the class count; "
                        "imagenet for ImageNet networks)")
    p.add_argument("--layers", type=int, default=None, help="cells (default: from the tensors)")
    p.add_argument("--init_channels", type=int, default=None,
                   help="C (default: from the stem)")
    p.add_argument("--auxiliary", action=argparse.BooleanOptionalAction, default=None,
                   help="auxiliary head present (default: from the tensors)")
    return p


def _main(argv):
    setup_logging()
    convert(parser().parse_args(argv))


def main(argv=None):
    return run_main(_main, argv)

