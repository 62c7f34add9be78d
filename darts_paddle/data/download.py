"""Find a data file under the data root, downloading it when allowed.

A download goes to a temporary file in the same directory and is renamed into place only
once complete (and its md5 checked when known), so an interrupted download never leaves a
partial file under the final name for the next run to choke on.
"""

import hashlib
import os
import urllib.request
from typing import Optional

from darts_paddle.errors import UserError
from darts_paddle.storage.atomic import new_temporary

TIMEOUT_S = 20
_CHUNK = 1 << 20


def file_md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str, md5: Optional[str] = None,
             timeout: float = TIMEOUT_S) -> None:
    """Fetch `url` into `dest` atomically; raises OSError/ValueError on any failure."""
    from tqdm import tqdm

    directory = os.path.dirname(os.path.abspath(dest))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = new_temporary(dest)  # with the umask's mode, as write_atomic's files
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(dest)) as bar:
                for block in iter(lambda: resp.read(_CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
        if md5 is not None and file_md5(tmp) != md5:
            raise ValueError(f"md5 mismatch for {url}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def require_file(spec, root: str, filename: str, allow_download: bool,
                 search_dirs=()) -> str:
    """Path of `filename` in `root` or one of `search_dirs`; downloaded into `root` if allowed."""
    root = os.path.abspath(root)
    for directory in (root, *search_dirs):
        path = os.path.join(directory, filename)
        if os.path.isfile(path):
            return path
    dest = os.path.join(root, filename)
    url = spec.url(filename)
    where = f"put {filename}" + (f" (from {url})" if url else "") + f" into {root}"
    if not allow_download or url is None:
        raise UserError(f"{spec.title} not found: {where} (automatic download is off)")
    try:
        download(url, dest, spec.md5.get(filename))
    except Exception as exc:  # no network, timeout, HTTP error, disk full, bad md5 ...
        raise UserError(f"{spec.title} not found: {where} (download failed: {exc})") from exc
    return dest
