"""Data-parallel estimators under ``torch.distributed`` (gloo, CPU): Sophia's GNB estimate with
the inputs sharded over 1, 2 and 4 processes and the gradient all-reduced (DDP's mean over the
ranks) has the same law at every world size; the gate, run in every rank in lockstep (same
seed, so the same directions and the same collective calls), passes it and names the per-rank
batch size fault (``B`` of one rank instead of the global one: the factor ``1/W``).

Independent route for "the same law": each input's label is drawn from a generator seeded by
(replicate seed, input index), so the estimates themselves agree across world sizes to rounding
(only the order of additions differs); the exact law the gate calibrates with does not know W.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torchrun_launch import run_workers

WORKER = r'''
import sys

import numpy as np
import torch
import torch.distributed as dist

import fisher_verify as fv
from fisher_verify import check_estimator
from fisher_verify._src.testing.estimator_gate import torch_parameter_permutation

M = 8


def setup():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    x = torch.as_tensor(np.random.default_rng(2).normal(size=(M, 3)))
    return model, x


def gnb(model, x, rank, world, per_rank_b=False):
    """Sophia's GNB under data parallelism: a local batch-mean loss, the gradient all-reduced
    and divided by W (DDP), times the batch size: the global M, or (the fault) the rank's."""
    lo, hi = rank * M // world, (rank + 1) * M // world
    xs = x[lo:hi]
    params = list(model.parameters())
    perm = torch.as_tensor(torch_parameter_permutation(model))

    def est(rng):
        seed = int(rng.integers(0, 2**40))
        logits = model(xs)
        with torch.no_grad():
            p = torch.softmax(logits, -1)
            y = torch.stack([torch.multinomial(p[i], 1, generator=torch.Generator().manual_seed(
                seed * M + lo + i))[0] for i in range(hi - lo)])
        loss = torch.nn.functional.cross_entropy(logits, y)
        g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, params)])
        if dist.is_initialized():
            dist.all_reduce(g)
        g = g / world
        B = (hi - lo) if per_rank_b else M
        return (B * g**2)[perm].detach().numpy()

    return est


def run(rank, world):
    torch.set_num_threads(1)
    model, x = setup()
    net = fv.Network.from_torch(model, fv.family("categorical", K=3))
    out = {"world": world}
    first = gnb(model, x, rank, world)
    out["estimates"] = torch.as_tensor(np.stack([first(np.random.default_rng(s)) for s in range(3)]))
    for name, fault in (("correct", False), ("per_rank_b", True)):
        rep = check_estimator(gnb(model, x, rank, world, fault), net, x.numpy(), n=1,
                              which="gnb", diagonal_only=True, rng=0, replications=200)
        out[name] = {"passed": torch.tensor(rep.passed), "cause": rep.cause, "factor": rep.factor,
                     "diagnosis": rep.diagnosis}
    return out


if __name__ == "__main__":
    dist.init_process_group("gloo")
    out = run(dist.get_rank(), dist.get_world_size())
    if dist.get_rank() == 0:
        torch.save(out, sys.argv[1])
    dist.barrier()  # neither process tears down while the other still works
    dist.destroy_process_group()
'''


@pytest.mark.parametrize("world", [1, 2, 4])
def test_gnb_under_gloo_has_the_same_law_at_every_world_size(tmp_path: Path, world: int) -> None:
    got, worker = run_workers(tmp_path, f"kinds_gate_ddp_{world}", WORKER, processes=world)
    assert got["world"] == world
    # the same draws give the same estimates as one process without torch.distributed
    model, x = worker.setup()
    one = worker.gnb(model, x, 0, 1)
    want = np.stack([one(np.random.default_rng(s)) for s in range(3)])
    est = got["estimates"].numpy()
    np.testing.assert_allclose(est, want, rtol=0, atol=1e-13 * float(np.max(np.abs(want))))
    assert bool(got["correct"]["passed"]), got["correct"]["diagnosis"]
    fault = got["per_rank_b"]
    if world == 1:  # one rank: its batch is the global one, nothing is wrong
        assert bool(fault["passed"])
    else:
        assert not bool(fault["passed"]) and fault["cause"] == "scale"
        assert fault["factor"] == f"1/{world}" and "data-parallel" in fault["diagnosis"]
