"""Search a DARTS cell:  python train_search.py [--unrolled] [--dataset fashion_mnist] ..."""

import os
import sys

from darts_paddle.runtime import configure

configure()  # threads and allocator, before paddle loads

from darts_paddle import cli  # noqa: E402
from darts_paddle.search import loop  # noqa: E402
from darts_paddle.errors import UserError  # noqa: E402
from darts_paddle.genotype import check_search_layers  # noqa: E402
from darts_paddle.state.atomic import remove_stale_temporaries  # noqa: E402


def main(argv=None):
    args = cli.search_parser().parse_args(argv)
    loop.method_of(args)  # contradictory method flags fail before anything is written
    if args.resume and args.init_from:
        raise UserError("--resume continues a run with its own state; drop --init_from")
    if args.resume:
        if not os.path.isdir(args.resume):
            raise UserError(f"--resume {args.resume}: no such directory; pass the "
                            "search-EXP-DATE directory of the run to continue")
        args.save = args.resume
        remove_stale_temporaries(args.save)  # what a killed save left behind
    else:
        check_search_layers(args.layers)
        cli.make_save_dir(args, "search")
    cli.setup_logging(args.save)
    loop.run(args)


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
