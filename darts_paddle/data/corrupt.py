"""One message for every data file that exists but cannot be decoded."""

import pickle
import struct
import tarfile
import zlib

from darts_paddle.errors import UserError

# What a truncated or foreign file makes the decoders raise (gzip, tarfile, pickle,
# scipy.io, numpy reshapes); any of them means the file, not darts-paddle, is wrong.
DECODE_ERRORS = (OSError, EOFError, tarfile.TarError, zlib.error, pickle.UnpicklingError,
                 ValueError, KeyError, TypeError, IndexError, AttributeError,
                 OverflowError, struct.error, NotImplementedError)


class FormatError(ValueError):
    """A file decoded but its content is not what the published format says."""


def corrupt(title: str, path: str, reason) -> UserError:
    return UserError(
        f"{title} file {path} is corrupt or truncated ({reason}): "
        f"delete it and download it again"
    )
