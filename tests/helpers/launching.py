"""Running a script as 2 CPU processes under `python -m paddle.distributed.launch` (gloo)."""

import os
import subprocess
import sys

import pytest

from darts_paddle.runtime import import_paddle

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

launched = pytest.mark.skipif(not import_paddle().is_compiled_with_distribute(),
                              reason="this Paddle build has no paddle.distributed")


def launch(cwd, log_dir, argv, script, processes=2):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PADDLE_", "FLAGS_sel"))}
    env["PYTHONPATH"] = os.pathsep.join([REPO, env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node",
           str(processes), "--log_dir", str(log_dir), script, *argv]
    return subprocess.run(cmd, cwd=str(cwd), env=env, capture_output=True, text=True,
                          timeout=300)


def wrapper(directory, name, body):
    """A script in `directory` that runs `body` (Python source) with the repository on
    sys.path."""
    path = os.path.join(str(directory), name)
    with open(path, "w") as f:
        f.write(f"import sys\nsys.path.insert(0, {REPO!r})\n{body}")
    return path
