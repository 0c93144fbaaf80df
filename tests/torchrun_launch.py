"""Run a worker script under ``torchrun`` with gloo processes on localhost (the sharding tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_workers(tmp_path: Path, module: str, source: str, processes: int = 2) -> Any:
    """Write ``source`` as ``module``.py, run it on ``processes`` gloo processes (its one argument
    the path the worker saves its result to), and return the loaded result and the imported
    module (whose one-process routes the test compares against)."""
    import importlib

    import torch

    script = tmp_path / f"{module}.py"
    script.write_text(source)
    result = tmp_path / "result.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                           os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node",
           str(processes), "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           str(script), str(result)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sys.path.insert(0, str(tmp_path))
    try:
        worker = importlib.import_module(module)
    finally:
        sys.path.remove(str(tmp_path))
    return torch.load(result, weights_only=True), worker
