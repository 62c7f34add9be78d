"""The one rule of --resume, for the search and the training alike.

A resumed run continues with the flags it was started with: a flag left out takes the run's
value, a flag given that contradicts the run is refused by name, and the one deliberate
change that is safe, more --epochs (the schedules stretch to the new length from where the
run is), is allowed and logged.  --data is the run's unless given anew (the data may have
moved); flags that do not change what a run computes (--workers, --report_freq) are free.
"""

from ..errors import UserError

# flags a resumed run may raise above the run's value
GROWABLE = ("epochs",)
# flags a resumed run takes from the run when left out, but may give anew
MOVABLE = ("data",)


def adopt_run_flags(args, given, saved, source):
    """Set `args` to the run's flags `saved` ({flag: value}); `given`: the flags on the
    command line (cli.given_flags).  Returns the allowed changes, as log text."""
    conflicts, changes = [], []
    for key, value in saved.items():
        ours = getattr(args, key, None)
        if key not in given or ours == value:
            setattr(args, key, value)
        elif key in MOVABLE or (key in GROWABLE and ours > value):
            changes.append(f"--{key} {ours} (the run's: {value})")
        else:
            conflicts.append(f"--{key} {ours} (checkpoint: {value})")
    if conflicts:
        raise UserError(f"--resume {source}: these flags contradict the run's: "
                        f"{'; '.join(conflicts)}. Leave them out to continue with the run's "
                        f"values (only {', '.join('--' + k for k in GROWABLE)} may grow)")
    return changes


def check_unfinished(done, args, source, result):
    """A run that has finished all its epochs is not resumed; `result` names its output."""
    if done >= args.epochs:
        raise UserError(f"--resume {source}: the run has finished all {done} epochs "
                        f"({result}); to go on, pass --epochs above {done}")
