"""Files that runs write (checkpoints, history.json, genotype.json), written atomically.

Each file is written to a temporary beside it and renamed into place (os.replace), so a
run killed or out of disk while saving leaves the previous file intact, never half a file.
A kill -9 can still leave the temporary behind; `remove_stale_temporaries` clears those
when a run resumes.  Needs neither numpy nor Paddle: genotype.py (numpy only) uses it too.
"""

import contextlib
import os
import re
import secrets

from ..errors import UserError

# The temporaries of our .npz and .json files: NAME.XXXXXXXX.tmp (8 hex digits now, 8
# characters of mkstemp's alphabet before), and history.json.tmp, which runs wrote before
# they used write_atomic.
_TEMPORARY = re.compile(r".+\.(npz|json)(\.[a-z0-9_]{8})?\.tmp")


def new_temporary(path):
    """(fd open for writing, name) of a new file beside `path`, NAME.XXXXXXXX.tmp, that is to
    become `path` by os.replace.  Created as open() creates files (0666 less the umask), not
    mkstemp's 0600: the temporary becomes the file, whose mode users expect of a file they
    wrote or fetched."""
    name = os.path.join(os.path.dirname(os.path.abspath(path)),
                        f"{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), name


def write_atomic(path, write, mode="wb"):
    """Create or replace `path` with what `write(file)` writes (a file opened with `mode`).

    Any OSError (disk full, no permission, ...) is a UserError naming the file; the
    temporary is removed whatever fails, and the previous `path` stays as it was."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = new_temporary(path)  # ours to remove from here on
        with open(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it the file
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(exc, OSError):
            # exc's own text would name the temporary, not the file the user knows
            reason = f"[Errno {exc.errno}] {exc.strerror}" if exc.strerror else str(exc)
            raise UserError(f"cannot write {path}: {reason}; the previous "
                            f"{os.path.basename(path)}, if any, is intact: free space (or fix "
                            "the cause) and run again, with --resume DIR to continue a run"
                            ) from None
        raise
    return path


def remove_stale_temporaries(directory):
    """Delete the temporaries an interrupted write_atomic left in `directory` (not in its
    subdirectories).  Call it only while no run writes there."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and _TEMPORARY.fullmatch(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
