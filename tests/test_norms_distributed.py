"""Pair sharding of the streamed thm-7/thm-8 norms: 2 gloo processes under torchrun give the
1-process result to rounding; the shares of the block pairs are disjoint, complete and balanced.

Equality with the one-process sum also shows the shares are disjoint and complete: a pair
computed on both processes would be counted twice by the all-reduce, a pair on neither missed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from torchrun_launch import run_workers

from fisher_verify._src.distributed import balanced_shares

WORKER = r'''
import sys
import numpy as np
import torch
import torch.distributed as dist

import fisher_verify as fv
from fisher_verify._src.distributed import process_group
from fisher_verify._src.models import mlp, mlp_bounds, mlp_norms


def setup(name):
    fam = fv.family("categorical", K=3) if name == "categorical" else fv.family("poisson")
    net = fv.Network.random([3, 4, 3, fam.dim], "tanh", fam, rng=21)
    X = np.random.default_rng(22).normal(size=(9, 3))  # 9 inputs, blocks of 2: 15 block pairs
    return net, X


def compute(distributed):
    out = {}
    for name in ("categorical", "poisson"):
        net, X = setup(name)
        s = mlp._setup(net, X, "cpu", None)
        rank, world = process_group(distributed) if distributed else (0, 1)
        for st in ("thm-7", "thm-8"):
            exact, _ = mlp_norms.pair_norm(net, X, 3, st, method="exact", block=2,
                                             device="cpu", distributed=distributed)
            sampled, _ = mlp_norms.pair_norm(net, X, 3, st, method="sampled", block=2,
                                               sample_inputs=4, seed=5, device="cpu",
                                               distributed=distributed)
            out[f"{name} {st} exact"] = exact.value
            out[f"{name} {st} sampled"] = sampled.value
            out[f"{name} {st} sampled stderr"] = sampled.stderr
        out[f"{name} thm-7 rhs"] = mlp_norms.thm7_rhs(s, 3.0, 2, rank, world)
        out[f"{name} thm-8 rhs"] = mlp_norms.thm8_rhs(s, 3.0, 2, rank, world)
        b7 = mlp_bounds.thm7_large(net, X, 3, device="cpu", method="exact", distributed=distributed)
        b8 = mlp_bounds.thm8_large(net, X, 3, device="cpu", method="exact", distributed=distributed)
        out[f"{name} thm7_large"] = (b7.lhs, b7.rhs)
        out[f"{name} thm8_large"] = (b8.lhs, b8.rhs)
    return out


if __name__ == "__main__":
    dist.init_process_group("gloo")
    out = compute(True)
    out["world"] = dist.get_world_size()
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, out)
    if dist.get_rank() == 0:
        torch.save({"ranks": [{k: torch.tensor(v, dtype=torch.float64) for k, v in g.items()}
                              for g in gathered]}, sys.argv[1])
    dist.destroy_process_group()
'''


def test_two_gloo_processes_share_the_pairs_and_equal_one_process(tmp_path: Path) -> None:
    import torch

    result, worker = run_workers(tmp_path, "w2_norms_worker", WORKER)
    ranks = result["ranks"]
    assert [int(r["world"]) for r in ranks] == [2, 2]
    want = worker.compute(False)
    for key, value in want.items():
        ref = torch.tensor(value, dtype=torch.float64)
        assert float(ref.abs().max()) > 0, key
        for got in ranks:  # every process returns the whole result
            err = float((got[key] - ref).abs().max() / ref.abs().max())
            assert err <= 1e-12, (key, err)  # only the order of the additions differs


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_balanced_shares_are_disjoint_complete_and_balanced(world: int) -> None:
    # block pairs of a ≤ b over 5 blocks of 4 inputs and a last block of 1: sizes R_a R_b
    rows = [4, 4, 4, 4, 4, 1]
    costs = [rows[a] * rows[b] for a in range(6) for b in range(a, 6)]
    shares = [balanced_shares(costs, r, world) for r in range(world)]
    taken = sorted(i for share in shares for i in share)
    assert taken == list(range(len(costs)))  # each pair exactly once
    loads = [sum(costs[i] for i in share) for share in shares]
    # greedy LPT: no rank exceeds the mean load by more than the largest single cost
    assert max(loads) <= sum(costs) / world + max(costs)
    assert all(share == sorted(share) for share in shares)


def test_balanced_shares_refuse_a_rank_outside_the_world() -> None:
    with pytest.raises(ValueError, match="rank"):
        balanced_shares([1.0, 2.0], 2, 2)
