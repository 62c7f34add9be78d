"""A run's log: the console and the run directory's log.txt."""

import logging
import os
import sys

LOGGER = "darts_paddle"  # the parent of every module's logger
# `extra` of a record for log.txt alone (detail too long for the console)
FILE_ONLY = {"file_only": True}


def setup_logging(save_dir=None, console_level=logging.INFO):
    """INFO (or `console_level`) to stdout but the records logged with extra=FILE_ONLY,
    everything to <save_dir>/log.txt (appended, so a resumed run keeps one log).  Not
    propagated: Paddle installs a handler on the root logger."""
    fmt = logging.Formatter("%(asctime)s %(message)s", "%m/%d %I:%M:%S %p")
    root = logging.getLogger(LOGGER)
    root.setLevel(logging.DEBUG)
    root.propagate = False
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(console_level)
    console.setFormatter(fmt)
    console.addFilter(lambda record: not getattr(record, "file_only", False))
    root.handlers[:] = [console]
    if save_dir is not None:
        logfile = logging.FileHandler(os.path.join(save_dir, "log.txt"))
        logfile.setFormatter(fmt)
        root.handlers.append(logfile)


def setup_process_logging(save_dir, is_main):
    """Under data parallel, rank 0 logs as a single process does; the other processes only
    report problems, on the console."""
    if is_main:
        setup_logging(save_dir)
    else:
        setup_logging(console_level=logging.WARNING)


def to_log_file(line):
    """`line` to the run's log.txt, if setup_logging opened one (the console has it already:
    the scripts' error lines go to stderr themselves)."""
    logger = logging.getLogger(LOGGER)
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, line, None, None)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
