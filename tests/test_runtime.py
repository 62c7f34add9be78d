"""Process-wide runtime settings: the heap touched ahead (runtime.prefault)."""

import json
import subprocess
import sys

PROBE = r"""
import json, os
import numpy as np
from darts_paddle import runtime

paddle = runtime.import_paddle()
MB = 1 << 20

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB

before = rss()
thread = runtime.prefault(paddle.CPUPlace(), 256 * MB)
thread.join()
touched = rss() - before
before = rss()
# 10 MB arrays: below the mmap threshold, so they come from the heap like Paddle's buffers
arrays = [np.ones(10 * MB // 8) for _ in range(20)]
print(json.dumps({"touched": touched, "later": rss() - before,
                  "none_for_gpu": runtime.prefault(object(), 256 * MB) is None,
                  "none_for_little": runtime.prefault(paddle.CPUPlace(), MB) is None}))
"""


def test_prefaulted_heap_serves_later_allocations():
    """The touched memory stays resident in the process, and 200 MB allocated afterwards
    take their pages from it: the resident size hardly grows (fresh memory: by 200 MB)."""
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, timeout=120)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["touched"] > 0.9 * 256  # MB
    assert got["later"] < 0.1 * 200
    assert got["none_for_gpu"] and got["none_for_little"]
