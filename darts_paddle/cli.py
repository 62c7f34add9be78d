"""Command-line plumbing shared by the scripts: flag types, the flags named on a command
line, and how a script ends (user mistakes as one line, signals as an exit status).

Flag names and defaults are those of the original DARTS scripts (search/flags.py,
train/flags.py, data/flags.py), so commands carry over.
"""

import argparse
import signal
import sys

from .errors import UserError
from .run.logs import to_log_file
from .run.stop import handle_signals

SAVE_HELP = ("NAME or DIR/NAME: the run goes to DIR/{kind}-NAME-DATE, DIR being the current "
             "directory for a NAME alone")


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive integer, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text):
    value = float(text)
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be 0 or a positive number, got {text}")
    return value


def image_size(text):
    value = int(text)
    # the networks halve it twice, and FactorizedReduce needs even maps each time
    if value < 4 or value % 4:
        raise argparse.ArgumentTypeError(f"must be a multiple of 4, got {text}")
    return value


def fraction(text):
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def add_visualdl_flag(p):
    """--visualdl, of the three scripts (run/vdl.py); free on --resume, so give it again."""
    p.add_argument("--visualdl", action="store_true", default=False,
                   help="also write scalars and cell pictures to SAVE_DIR/vdl for "
                        "`visualdl --logdir SAVE_DIR/vdl` (needs pip install visualdl)")


def given_flags(parser, argv=None):
    """The destinations of the flags named on the command line, as opposed to those left at
    their defaults (a resumed run takes those from its checkpoint: storage/resume.py)."""
    unset = object()
    # argparse sets a default only where the namespace lacks the attribute
    blank = argparse.Namespace(**dict.fromkeys(vars(parser.parse_args([])), unset))
    return {k for k, v in vars(parser.parse_args(argv, blank)).items() if v is not unset}


def run_main(fn, argv=None):
    """Run a script's body: user mistakes become one `error:` line and exit status 2; Ctrl-C
    and SIGTERM exit with 128 + the signal's number (run/stop.py)."""
    try:
        with handle_signals():
            fn(argv)
        return 0
    except UserError as e:
        _report(f"error: {e}")
        return 2
    except KeyboardInterrupt as e:
        _report("interrupted")
        return getattr(e, "exit_status", 128 + signal.SIGINT)


def _report(line):
    """`line` to stderr and to the run's log.txt, so that the log of a failed run says why
    it ended."""
    print(line, file=sys.stderr)
    to_log_file(line)
