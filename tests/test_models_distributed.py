"""Data-set sharding: 2 gloo processes started by torchrun give the 1-process result to rounding."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

WORKER = r'''
import sys
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset

import fisher_verify as fv


def setup():
    torch.manual_seed(11)
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                                torch.nn.Linear(15, 3))
    X = torch.randn(7, 2, 7)  # 7 inputs: unequal shards
    return model, X, fv.family("categorical", K=3)


def compute(distributed):
    model, X, fam = setup()
    loader = DataLoader(TensorDataset(X, torch.zeros(7)), batch_size=2)
    return {
        "fisher": fv.model_fisher_diagonal(model, X, fam, distributed=distributed, progress=False),
        "fisher_loader": fv.model_fisher_diagonal(model, loader, fam, distributed=distributed,
                                                  progress=False),
        "var1": fv.model_variance_diagonal(model, X, fam, n=3, distributed=distributed,
                                           progress=False),
        "var2": fv.model_variance_diagonal(model, X, fam, estimator=2, n=3, method="hessian",
                                           distributed=distributed, progress=False),
    }


if __name__ == "__main__":
    dist.init_process_group("gloo")
    out = {k: dict(v) for k, v in compute(True).items()}
    out["world"] = dist.get_world_size()
    if dist.get_rank() == 0:
        torch.save(out, sys.argv[1])
    dist.destroy_process_group()
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_gloo_processes_equal_one_process(tmp_path: Path) -> None:
    script = tmp_path / "h9_dist_worker.py"
    script.write_text(WORKER)
    result = tmp_path / "result.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                           os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script), str(result)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(result, weights_only=True)
    assert got["world"] == 2
    sys.path.insert(0, str(tmp_path))
    try:
        import h9_dist_worker  # type: ignore[import-not-found]

        want = h9_dist_worker.compute(False)
    finally:
        sys.path.remove(str(tmp_path))
    for key, diag in want.items():
        scale = max(float(v.abs().max()) for v in diag.values())
        assert scale > 0
        for name, value in diag.items():
            err = float((got[key][name] - value).abs().max()) / scale
            assert err <= 1e-13, (key, name, err)  # only the order of additions differs
