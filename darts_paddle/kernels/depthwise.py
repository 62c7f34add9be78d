"""Our CPU depthwise convolution (depthwise.cc) as a Paddle op, compiled on first use.

Why: Paddle 3.3's CPU depthwise kernel is single-threaded, several times slower than
oneDNN's or PyTorch's on the networks' shapes, and most of a search pass; oneDNN is no way
out by default (onednn.py: it makes the executor run one op at a time).  Ours is a custom op,
so the executor keeps running independent ops side by side (docs/paddle.md section 11).

The op: x [N, Cin, H, W] and weights [C_g, 1, k_g, k_g] (dilation d_g each) stacked to
Cout = sum C_g output channels; output channel o reads input channel o % Cin (one weight
of Cout = Cin: conv2d with groups = Cin; Cout = E * Cin: E edge-major copies of x, so the
search cell needs no `paddle.tile`; several weights: the search cell's four conv
primitives as one op, supernet.py).  Its gradient op computes all gradients.

The library is built once per source, Paddle version and CPU into
$XDG_CACHE_HOME/darts_paddle/kernels (default ~/.cache/...), under a file lock (the ranks
of a data-parallel launch start together).  Without a compiler, or if the build fails,
`available()` logs one line and returns False: nets/ops.py then builds Paddle's conv2d.
"""

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile

from ..errors import UserError
from ..paddle_static import paddle
from ..storage.atomic import write_atomic
from paddle import _C_ops  # noqa: E402 (after paddle_static: Paddle loads configured)
from paddle.utils import cpp_extension  # noqa: E402

log = logging.getLogger("darts_paddle.kernels")

OP = "darts_depthwise_conv2d"
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "depthwise.cc")
CXX_FLAGS = ["-O3", "-march=native", "-fopenmp", "-g0"]  # -g0: Paddle's builder adds -g
# OpenMP threads per op (DARTS_PADDLE_KERNEL_THREADS overrides): the executor already runs
# two ops side by side, so a second thread per op did not pay (docs/paddle.md section 11)
THREADS = 1
THREADS_VARIABLE = "DARTS_PADDLE_KERNEL_THREADS"

# Paddle's extension builder, run as `python -c _SETUP build` in the build directory
_SETUP = """
from paddle.utils.cpp_extension import BuildExtension, CppExtension, setup
setup(name={op!r},
      ext_modules=[CppExtension(sources=[{source!r}],
                                extra_compile_args={{"cxx": {flags!r}}})],
      cmdclass={{"build_ext": BuildExtension.with_options(output_dir=".",
                                                          no_python_abi_suffix=True)}})
"""

_state = {}


def kernel_threads():
    value = os.environ.get(THREADS_VARIABLE, str(THREADS))
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"{THREADS_VARIABLE}={value}: use a positive whole number of threads "
                        "(or leave it unset)")
    return int(value)


def cache_root():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "darts_paddle", "kernels")


def _cpu_flags():
    """-march=native code needs the instructions of the CPU it was built on: a home
    directory shared by different machines keeps one library per kind of CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return ""


def build_key():
    """What the library depends on: the source, Paddle's version, the flags, the CPU."""
    digest = hashlib.sha256()
    with open(SOURCE, "rb") as f:
        digest.update(f.read())
    for part in (paddle.__version__, " ".join(CXX_FLAGS), _cpu_flags()):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def _compile(library):
    """Build `library` in a fresh directory beside it and move it into place, so that a
    build cut short leaves no library behind; the compiler's output is kept in
    compile.log there."""
    directory = os.path.dirname(library)
    work = tempfile.mkdtemp(prefix="build.", dir=directory)
    try:
        script = _SETUP.format(op=OP, source=SOURCE, flags=CXX_FLAGS)
        result = subprocess.run([sys.executable, "-c", script, "build"], cwd=work,
                                capture_output=True, text=True)
        log_path = write_atomic(os.path.join(directory, "compile.log"),
                                lambda f: f.write(result.stdout + result.stderr), mode="w")
        built = os.path.join(work, OP + ".so")
        if result.returncode != 0 or not os.path.exists(built):
            raise RuntimeError(f"the build failed, see {log_path}")
        os.replace(built, library)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _load():
    directory = os.path.join(cache_root(), build_key())
    library = os.path.join(directory, OP + ".so")
    os.makedirs(directory, exist_ok=True)
    with open(directory + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not os.path.exists(library):
            log.info("compiling the depthwise kernel (once, ~20 s) into %s", directory)
            _compile(library)
    cpp_extension.load_op_meta_info_and_register_op(library)


def available():
    """True once the op is registered (compiling it the first time); False, with one
    logged line, when it cannot be built here."""
    if "ok" not in _state:
        try:
            _load()
            _state["ok"] = True
        except Exception as exc:  # no compiler, a read-only cache, a Paddle without headers
            log.warning("depthwise convolutions run on Paddle's conv2d: our kernel could not "
                        "be built (%s); it needs g++ (apt-get install g++) and a writable "
                        "%s", exc, cache_root())
            _state["ok"] = False
    return _state["ok"]


def depthwise_conv2d(x, weights, stride=1, dilations=(1,)):
    """The op (available() must be True) over the weights [C_g, 1, k_g, k_g] stacked along
    the output channels, dilations[g] for weight g, "same" padding (odd k): output channel
    o convolved with its weight row, read from x's channel o % Cin."""
    (y,) = _C_ops._run_custom_op(OP, [x, *weights], stride, list(dilations),
                                 kernel_threads())
    return y
