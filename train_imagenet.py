"""Train a DARTS network on ImageNet (--data: a folder with train/ and val/ class folders):

    python train_imagenet.py --arch DARTS_V2 --auxiliary --data /path/to/imagenet
    python train_imagenet.py --resume eval-EXP-20260101-120000
    python train_imagenet.py --eval_only --model_path eval-EXP-.../best.npz
"""

import sys

from darts_paddle.runtime import configure

configure()  # threads and allocator, before paddle loads

from darts_paddle import cli  # noqa: E402
from darts_paddle.train import flags, loop  # noqa: E402


def main(argv=None):
    parser = flags.train_imagenet_parser()
    loop.main(parser.parse_args(argv), "imagenet", cli.given_flags(parser, argv))


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
