"""Data-set sharding: 2 gloo processes started by torchrun give the 1-process result to rounding."""

from __future__ import annotations

from pathlib import Path

from torchrun_launch import run_workers

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
        "fisher": fv.exact_fisher(model, X, fam, diagonal=True, distributed=distributed,
                                  progress=False),
        "fisher_loader": fv.exact_fisher(model, loader, fam, diagonal=True,
                                         distributed=distributed, progress=False),
        "var1": fv.variance(model, X, fam, n=3, diagonal=True, distributed=distributed,
                            progress=False),
        "var2": fv.variance(model, X, fam, which="I2", n=3, diagonal=True, method="hessian",
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


def test_two_gloo_processes_equal_one_process(tmp_path: Path) -> None:
    got, worker = run_workers(tmp_path, "h9_dist_worker", WORKER)
    assert got.pop("world") == 2
    want = worker.compute(False)
    for key, diag in want.items():
        scale = max(float(v.abs().max()) for v in diag.values())
        assert scale > 0
        for name, value in diag.items():
            err = float((got[key][name] - value).abs().max()) / scale
            assert err <= 1e-13, (key, name, err)  # only the order of additions differs
