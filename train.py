"""Train a DARTS network on CIFAR-10 (or --dataset cifar100 / svhn / fashion_mnist):

    python train.py --arch DARTS_V2 --auxiliary --cutout
    python train.py --resume eval-EXP-20260101-120000          # continue a run
    python train.py --eval_only --model_path eval-EXP-.../best.npz [--export [onnx]]
"""

import sys

from darts_paddle.runtime import configure

configure()  # threads and allocator, before paddle loads

from darts_paddle import cli  # noqa: E402
from darts_paddle.train import flags, loop  # noqa: E402


def main(argv=None):
    parser = flags.train_parser()
    loop.main(parser.parse_args(argv), "cifar", cli.given_flags(parser, argv))


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
