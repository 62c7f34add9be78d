"""Process-wide settings that must be in place before paddle is imported.

Why a module of its own: OpenMP reads its thread count, glibc its allocator tunables and
Paddle its GFLAGS when they first load, so they cannot be changed by the code that builds
programs.  Every entry point calls `configure()` first; users override any default by
exporting the variable themselves (we never overwrite what is already set).

Defaults chosen by measurement (docs/paddle.md section 7, docs/performance.md):
- Paddle's CPU depthwise convolutions (most of a search pass) are single-threaded, so the
  executor running independent ops side by side (FLAGS_new_executor_serial_run = 0) with
  single-threaded kernels (OMP_NUM_THREADS = 1, FLAGS_paddle_num_threads = 1) is fastest,
  for more peak memory than one op at a time with two OpenMP threads (the architect's
  in-place vector programs passed tests/test_search_core.py in both modes when this
  default was chosen);
  our depthwise kernel (kernels/, DARTS_PADDLE_DEPTHWISE=kernel, the default) keeps this
  mode, one thread per op;
- with DARTS_PADDLE_DEPTHWISE=onednn (opt-in, onednn.py) the depthwise convs run on
  oneDNN, multi-threaded; the executor then runs the program's ops one at a time, so
  OpenMP gets both cores (OMP_NUM_THREADS = 2, docs/paddle.md section 8);
- glibc's default malloc returns the large conv buffers to the kernel after every op,
  and a step then spends much of its time in page faults; raising the mmap and trim
  thresholds keeps them in the heap.  Set through mallopt() because the MALLOC_*
  variables are only read at process start.  One malloc arena for all threads, so that memory one thread
  frees serves the others, which `prefault` relies on;
- touching fresh memory is slow on the virtual machine we measured on (docs/paddle.md
  section 7), and a search's first passes need gigabytes of it, so `prefault` touches the
  heap they will need on the second core while the first builds the programs.
"""

import ctypes
import ctypes.util
import os
import threading
import warnings

_configured = False
_libc = None  # glibc, once tune_malloc() has set it up
_malloc_holding_gil = None  # its malloc called without releasing the GIL (ctypes.PyDLL)

# mallopt() parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD = 32 * 1024 * 1024
_PREFAULT_CHUNK = 16 * 1024 * 1024  # below the mmap threshold: the chunks come from the heap


DEPTHWISE_BACKENDS = ("kernel", "paddle", "onednn")  # the first is the default
INFERENCE_BACKENDS = ("onednn", "paddle")


def _choice(variable, choices):
    """The value of environment variable `variable`, one of `choices` (default: the first)."""
    value = os.environ.get(variable, choices[0])
    if value not in choices:
        from .errors import UserError

        raise UserError(f"{variable}={value}: use one of {', '.join(choices)} "
                        "(or leave it unset)")
    return value


def depthwise_backend():
    """The depthwise convs' kernels on the CPU (DARTS_PADDLE_DEPTHWISE): 'kernel' (default:
    ours, kernels/depthwise.py), 'paddle' (Paddle's conv2d) or 'onednn' (onednn.py)."""
    return _choice("DARTS_PADDLE_DEPTHWISE", DEPTHWISE_BACKENDS)


def inference_backend():
    """The kernels of inference programs on the CPU (DARTS_PADDLE_INFERENCE): 'onednn'
    (default: every op oneDNN has, on every core, onednn.place_inference) or 'paddle'
    (Paddle's default kernels, ops side by side like the other programs)."""
    return _choice("DARTS_PADDLE_INFERENCE", INFERENCE_BACKENDS)


def _default_env():
    return {
        "OMP_NUM_THREADS": "2" if depthwise_backend() == "onednn" else "1",
        "FLAGS_paddle_num_threads": "1",
        "FLAGS_new_executor_serial_run": "0",
        # Paddle logs every executor start at INFO level and warns on harmless PIR
        # internals; users see our progress output instead.  GLOG_v / GLOG_minloglevel
        # set by the user still win.
        "GLOG_minloglevel": "2",
    }


def tune_malloc():
    """Keep large freed blocks in the heap instead of unmapping them after every op."""
    global _libc, _malloc_holding_gil
    if os.environ.get("DARTS_PADDLE_MALLOC", "tuned") != "tuned":
        return False
    path = ctypes.util.find_library("c")
    if not path:
        return False
    try:
        libc = ctypes.CDLL(path)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    ok &= mallopt(_M_TRIM_THRESHOLD, 16 * 1024 * 1024 * 1024)
    ok &= mallopt(_M_TOP_PAD, 1024 * 1024 * 1024)
    ok &= mallopt(_M_ARENA_MAX, 1)
    if ok:
        libc.free.argtypes = [ctypes.c_void_p]
        _malloc_holding_gil = ctypes.PyDLL(path).malloc
        _malloc_holding_gil.restype = ctypes.c_void_p
        _malloc_holding_gil.argtypes = [ctypes.c_size_t]
        _libc = libc
    return bool(ok)


def prefault(place, nbytes):
    """Touch `nbytes` of heap on a background thread and free them back into the heap,
    where the trim threshold keeps them: the first passes of the programs being built
    meanwhile find memory the kernel has already supplied.  CPU places only (activations
    live on the device otherwise), at most half the free memory, nothing without the tuned
    allocator.  Start it before building the programs: started after the build, its memory
    was not reused in our measurements.  Returns the thread, or None."""
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    chunks = int(min(nbytes, free // 2)) // _PREFAULT_CHUNK
    if _libc is None or chunks < 1 or not isinstance(place, import_paddle().CPUPlace):
        return None

    def touch():
        # All blocks first, then touch them: taken in one go, with the GIL held, they lie
        # side by side in the heap and merge into one free region when freed.  Touched as
        # they were taken, the build's small allocations fell between them and left 16 MB
        # holes that the default supernet's 16 MB activations did not fit.
        held = [block for block in (_malloc_holding_gil(_PREFAULT_CHUNK)
                                    for _ in range(chunks)) if block]
        for block in held:
            ctypes.memset(block, 0, _PREFAULT_CHUNK)  # ctypes releases the GIL here
        for block in held:
            _libc.free(block)

    thread = threading.Thread(target=touch, name="darts_paddle-prefault", daemon=True)
    thread.start()
    return thread


def configure():
    """Apply the runtime defaults once; must run before the first `import paddle`."""
    global _configured
    if _configured:
        return
    for key, value in _default_env().items():
        os.environ.setdefault(key, value)
    tune_malloc()
    # paddle.utils.cpp_extension warns about a missing ccache at import: irrelevant here.
    warnings.filterwarnings("ignore", message=".*ccache.*")
    # paddle.static.gradients itself asks a PIR value for its place and warns about it.
    warnings.filterwarnings("ignore", message="Tensor do not have 'place' interface")
    _configured = True


def import_paddle():
    """Import paddle after `configure()`, in static mode."""
    configure()
    import paddle

    paddle.enable_static()
    return paddle


def get_place():
    """CUDAPlace(0) when Paddle has CUDA and a device exists, else CPUPlace."""
    paddle = import_paddle()
    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        return paddle.CUDAPlace(0)
    return paddle.CPUPlace()
