"""Flags of train.py and train_imagenet.py: the original scripts' names and defaults, plus
--dataset, --max_steps, --resume, --init_from, --eval_only/--model_path, --export [onnx],
--workers and --visualdl."""

import argparse
import os

from ..cli import SAVE_HELP, add_visualdl_flag, positive_int
from ..data.flags import DATASETS, DATASETS_AND_FOLDER, folder_flags

# NAS-Bench-201's training schedule (Dong & Yang, ICLR 2020, section 2.3; AutoDL-Projects'
# configs/nas-benchmark/hyper-opts/200E.config, whose training loop clips no gradient):
# train.py's values for a NAS-Bench-201 cell where the command line gives none, besides
# Nesterov momentum.  Its network has no auxiliary head and no drop path.
NB201_FLAGS = {"epochs": 200, "batch_size": 256, "learning_rate": 0.1, "momentum": 0.9,
               "weight_decay": 5e-4, "grad_clip": 0.0, "init_channels": 16, "layers": 5,
               "drop_path_prob": 0.0}


def _probability(text):
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _common(p, d):
    """Flags both scripts share; `d` holds the script's defaults."""
    # absolute, so that a resumed run finds the data from any directory
    p.add_argument("--data", default=d["data"], type=os.path.abspath,
                   help="location of the data corpus")
    p.add_argument("--dataset", default=d["dataset"], choices=d["datasets"])
    p.add_argument("--batch_size", type=positive_int, default=d["batch_size"])
    p.add_argument("--learning_rate", type=float, default=d["learning_rate"], help="init lr")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight_decay", type=float, default=d["weight_decay"])
    p.add_argument("--report_freq", type=positive_int, default=d["report_freq"],
                   help="log every N steps")
    p.add_argument("--epochs", type=positive_int, default=d["epochs"])
    p.add_argument("--init_channels", type=positive_int, default=d["init_channels"])
    p.add_argument("--layers", type=positive_int, default=d["layers"],
                   help="total number of cells; for a NAS-Bench-201 cell (train.py) the cells "
                        f"per stage, N (default {NB201_FLAGS['layers']})")
    p.add_argument("--auxiliary", action="store_true", default=False, help="use auxiliary tower")
    p.add_argument("--auxiliary_weight", type=float, default=0.4, help="weight for auxiliary loss")
    p.add_argument("--drop_path_prob", type=_probability, default=d["drop_path_prob"])
    p.add_argument("--save", default="EXP", help=SAVE_HELP.format(kind="eval"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arch", default=None,
                   help="genotype: a name in genotypes.py, a Genotype(...) literal or a JSON path "
                        "(default: DARTS; with --init_from: the checkpoint's); train.py also "
                        "takes a NAS-Bench-201 cell: its arch string '|op~0|+|op~0|op~1|+...', "
                        "a name in genotypes.py holding one, or a NAS-Bench-201 search's "
                        "genotype.json, trained on NAS-Bench-201's network with its schedule "
                        "for the flags not given: "
                        + " ".join(f"--{k} {v:g}" for k, v in NB201_FLAGS.items())
                        + ", Nesterov momentum")
    p.add_argument("--grad_clip", type=float, default=5.0,
                   help="gradient clipping (global norm; 0: none)")
    p.add_argument("--max_steps", type=positive_int, default=None,
                   help="cap the train and test steps per epoch (smoke runs)")
    p.add_argument("--resume", default=None, metavar="PATH",
                   help="continue the run of a checkpoint.npz (or of its directory)")
    p.add_argument("--init_from", default=None, metavar="PATH",
                   help="start a fresh run (epoch 0, new optimizer) from the weights and BN "
                        "statistics of a checkpoint: ours, or one converted from PyTorch")
    p.add_argument("--eval_only", action="store_true", default=False,
                   help="only evaluate the checkpoint given by --model_path on the test set")
    p.add_argument("--model_path", default=None, help="checkpoint for --eval_only")
    p.add_argument("--export", nargs="?", const="paddle", default=None,
                   choices=("paddle", "onnx"),
                   help="also save a Paddle inference model and check that it reloads; "
                        "onnx: and its ONNX conversion (paddle2onnx), checked with "
                        "onnxruntime")
    p.add_argument("--workers", type=int, default=None, help="data loader processes")
    add_visualdl_flag(p)


def train_parser():
    p = argparse.ArgumentParser(description="Train a DARTS network on CIFAR-10 (Paddle static)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _common(p, dict(data="./data", dataset="cifar10", datasets=DATASETS_AND_FOLDER,
                    batch_size=96, learning_rate=0.025, weight_decay=3e-4, report_freq=50,
                    epochs=600, init_channels=36, layers=20, drop_path_prob=0.2))
    p.add_argument("--cutout", action="store_true", default=False, help="use cutout")
    p.add_argument("--cutout_length", type=positive_int, default=16)
    folder_flags(p)
    return p


def train_imagenet_parser():
    p = argparse.ArgumentParser(description="Train a DARTS network on ImageNet (Paddle static)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # the small data sets are accepted for smoke runs of the ImageNet network
    _common(p, dict(data="./data/imagenet", dataset="imagenet",
                    datasets=("imagenet",) + DATASETS, batch_size=128, learning_rate=0.1,
                    weight_decay=3e-5, report_freq=100, epochs=250, init_channels=48, layers=14,
                    drop_path_prob=0.0))
    p.add_argument("--label_smooth", type=_probability, default=0.1, help="label smoothing")
    p.add_argument("--gamma", type=float, default=0.97, help="learning rate decay")
    p.add_argument("--decay_period", type=positive_int, default=1,
                   help="epochs between two learning rate decays")
    return p
