"""ext-sharded: sums split over torch.distributed processes equal one process (beyond the paper:
the README's "Sharding over processes").

Every data-set quantity is a sum over inputs (the model engine's eq-6/thm-4/thm-6 diagonals,
:mod:`fisher_verify._src.models`; the thm-7/thm-8 right-hand sides) or over pairs of input blocks
(the streamed ‖Cov(Î₁)‖_F and ‖Cov(Î₂)‖_F of :mod:`fisher_verify._src.models.mlp_norms`), each
process summing its share and :mod:`fisher_verify._src.distributed` all-reducing the partial sums.
This statement starts two gloo processes (a file rendezvous in a temporary folder: no port,
no working directory, no state of the calling process), computes every sharded quantity
there, and compares it with the same call in this one process.

**Tolerance (scaled to the summed terms).** The routes differ only in the order of float64
additions, so the difference is at most ``RTOL`` times the magnitude of the terms summed. Every
term is non-negative, so that magnitude is the value itself (its largest entry):

* the diagonals' terms are ``uᵀIu``, ``C[u⁴] = Var_y(s_i²)`` and ``dᵀId``; the right-hand
  sides' are norms;
* a norm ``L = √S / (M²N)`` sums pair terms ``tr(C_m (G⊗G) C_m' (G⊗G)ᵀ)`` (thm-7,
  ``G = J_m J_m'ᵀ``) and ``tr(I_m T I_m' Tᵀ)`` (thm-8, ``T_αγ = tr(H^α_m H^γ_m')``): traces of
  products of positive semi-definite matrices, since ``C_m`` (as a matrix over index pairs) is
  the covariance of ``vec((t−η)(t−η)ᵀ)`` and ``I_m`` that of ``t``; so ``|ΔS| ≤ RTOL·S`` and
  ``|ΔL| ≤ RTOL·L/2`` (tests/test_ext_sharded_scale.py checks the terms' sign).

**A planted double count is detected.** The workers then wrap ``torch.distributed.all_reduce``
so that rank 0 adds its share twice (as if its inputs were in the data twice) and compute
everything again. For the model diagonals that result must equal one process on the data with
rank 0's inputs appended once more (which shows the plant is a double count), and for every
quantity it must fail the comparison above: its margin, ``|planted − one process|`` over the
allowed difference, must exceed 1 (recorded; typically ~1e11).
"""

from fisher_verify.proofs import statement

RTOL = 1e-13
N_DRAWS = 3
#: seconds the two worker processes may take together before the statement fails
WORKER_TIMEOUT = 120

WORKER = r'''
"""ext-sharded worker: every sharded quantity, then again with rank 0's share counted twice."""
import sys
from datetime import timedelta

import numpy as np
import torch

import fisher_verify as fv
from fisher_verify._src.distributed import process_group
from fisher_verify._src.models import mlp, mlp_bounds, mlp_norms

N = %(n)d
BLOCK = 2  # 9 inputs in blocks of 2: 15 block pairs to share


def model_setup(seed):
    """A small CNN-like model (Conv1d, tanh, Linear), 7 inputs (unequal shards of 4 and 3)."""
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        model = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3), torch.nn.Tanh(),
                                    torch.nn.Flatten(), torch.nn.Linear(15, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.as_tensor(0.5 * rng.normal(size=tuple(p.shape))))
    return model, torch.as_tensor(rng.normal(size=(7, 2, 7))), fv.family("categorical", K=3)


def model_quantities(model, X, fam, distributed):
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(X, torch.zeros(len(X))), batch_size=2)
    kw = dict(distributed=distributed, progress=False)
    got = {
        "fisher": fv.exact_fisher(model, X, fam, diagonal=True, **kw),
        "fisher (DataLoader)": fv.exact_fisher(model, loader, fam, diagonal=True, **kw),
        "Var(I1)": fv.variance(model, X, fam, n=N, diagonal=True, **kw),
        "Var(I2) hessian": fv.variance(model, X, fam, which="I2", n=N, diagonal=True,
                                       method="hessian", **kw),
    }
    return {f"model {k}": torch.cat([v.reshape(-1) for v in d.values()]).numpy()
            for k, d in got.items()}


def norm_setup(name, seed):
    fam = fv.family("categorical", K=3) if name == "categorical" else fv.family("poisson")
    net = fv.Network.random([3, 4, 3, fam.dim], "tanh", fam, rng=seed)
    return net, np.random.default_rng(seed + 1).normal(size=(9, 3))


def norm_quantities(name, net, X, distributed):
    s = mlp._setup(net, X, "cpu", None)
    rank, world = process_group(distributed)
    out = {}
    for st in ("thm-7", "thm-8"):
        est, _ = mlp_norms.pair_norm(net, X, N, st, method="exact", block=BLOCK, device="cpu",
                                       distributed=distributed)
        out[f"{name} {st} lhs"] = np.array([est.value])
    out[f"{name} thm-7 rhs"] = np.array(mlp_norms.thm7_rhs(s, float(N), BLOCK, rank, world))
    out[f"{name} thm-8 rhs"] = np.array([mlp_norms.thm8_rhs(s, float(N), BLOCK, rank, world)])
    return out


def compute(distributed, seed):
    out = model_quantities(*model_setup(seed), distributed)
    for k, name in enumerate(("categorical", "poisson")):
        out.update(norm_quantities(name, *norm_setup(name, seed + 10 + 2 * k), distributed))
    return out


def plant_double_count():
    """Rank 0 adds its partial sums twice in every summing all-reduce."""
    import torch.distributed as dist

    plain = dist.all_reduce

    def doubled(tensor, op=dist.ReduceOp.SUM, *args, **kwargs):
        if op == dist.ReduceOp.SUM and dist.get_rank() == 0:
            tensor.mul_(2)
        return plain(tensor, op, *args, **kwargs)

    dist.all_reduce = doubled


if __name__ == "__main__":
    import torch.distributed as dist

    rendezvous, rank, world, seed, result = sys.argv[1:6]
    # a bounded wait: a worker whose partner died (or whose caller was killed) ends by itself
    dist.init_process_group("gloo", init_method="file://" + rendezvous, rank=int(rank),
                            world_size=int(world), timeout=timedelta(seconds=%(timeout)d))
    try:
        got = compute(True, int(seed))
        got["world"] = np.array([float(process_group(True)[1])])
        plant_double_count()
        got.update({"planted " + k: v for k, v in compute(True, int(seed)).items()})
        if int(rank) == 0:
            np.savez(result, **got)
        # both ranks leave together: a rank tearing gloo down while its partner still works
        # aborted now and then ("terminate called without an active exception", exit -6)
        dist.barrier()
    finally:
        dist.destroy_process_group()
'''


def _start_workers(folder, seed, world=2):
    """Write the worker script and start ``world`` gloo processes on it (they run while this
    process computes the one-process route)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import fisher_verify

    script = Path(folder) / "ext_sharded_worker.py"
    script.write_text(WORKER % {"n": N_DRAWS, "timeout": WORKER_TIMEOUT})
    package_root = str(Path(fisher_verify.__file__).resolve().parents[1])
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]))
    return [subprocess.Popen([sys.executable, str(script), str(Path(folder) / "rendezvous"),
                              str(r), str(world), str(seed), str(Path(folder) / "result.npz")],
                             cwd=folder, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for r in range(world)]


def _finish_workers(folder, procs):
    """Rank 0's result, or why there is none; no worker outlives this call."""
    import subprocess
    import time
    from pathlib import Path

    import numpy as np

    errors = []
    deadline = time.monotonic() + WORKER_TIMEOUT
    try:
        for p in procs:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if p.returncode != 0:
                errors.append(f"rank exit {p.returncode}: {err[-1500:]}")
    except subprocess.TimeoutExpired:
        errors.append(f"workers did not finish in {WORKER_TIMEOUT} s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    result = Path(folder) / "result.npz"
    if errors or not result.exists():
        return "; ".join(errors) or "rank 0 wrote no result"
    with np.load(result, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _load_worker(folder):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("ext_sharded_worker",
                                                  Path(folder) / "ext_sharded_worker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _OneThread:
    """torch's intra-op threads set to 1 for the block, then restored: the two workers already
    hold the cores, and tiny ops slow down many-fold with threads competing for them."""

    def __enter__(self):
        import torch

        self.torch, self.before = torch, torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        self.torch.set_num_threads(self.before)


@statement(
    "ext-sharded",
    title="Beyond the paper: sharding over torch.distributed",
    claim=r"\text{2 gloo processes} = \text{1 process: } \operatorname{diag} I(\theta),\ "
    r"\operatorname{diag}\operatorname{Var}(\hat I_{1,2}),\ \lVert\operatorname{Cov}"
    r"(\hat I_{1,2})\rVert_F,\ \text{thm-7 and thm-8 right-hand sides}",
    hypotheses=[r"\text{float64, CPU, gloo}"],
    method="two processes against one, with a planted double count",
)
def check(ctx):
    """Every sharded quantity (model diagonals from a tensor and a DataLoader, pair-sharded
    norms, the rhs of thm-7/thm-8) against one process at RTOL 1e-13 of the summed (non-negative)
    terms; a double count of rank 0's share must equal the duplicated-data result (model
    diagonals) and fail that comparison for every quantity."""
    import tempfile

    import numpy as np
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_gloo_available()):
        return ctx.not_applicable("this torch build has no torch.distributed with gloo")
    seed = int(ctx.rng.integers(0, 2**31 - 1))
    with tempfile.TemporaryDirectory(prefix="fv-ext-sharded-") as folder:
        procs = _start_workers(folder, seed)
        try:
            with _OneThread():
                worker = _load_worker(folder)
                one = worker.compute(False, seed)
                # the plant is a double count: one process on the data with rank 0's inputs twice
                model, X, fam = worker.model_setup(seed)
                dup = worker.model_quantities(model, torch.cat([X, X[0::2]]), fam, False)
        finally:
            got = _finish_workers(folder, procs)
    if isinstance(got, str):
        ctx.true("two gloo worker processes ran", False, detail=got)
        return ctx.conclude()
    ctx.close("world size", got.pop("world"), 2.0, 0.0)
    ctx.true("the workers computed every quantity and its planted variant",
             set(got) == set(one) | {"planted " + k for k in one}, detail=str(sorted(got)))
    margins = {}
    for key, want in one.items():
        if key not in got:
            continue
        scale = float(np.max(np.abs(want)))  # non-negative terms (module docstring)
        ctx.true(f"{key}: not vacuous", scale > 1e-8)
        ctx.close(f"{key}: 2 processes = 1 process", got[key], want, RTOL, scale=scale)
        planted = got.get("planted " + key)
        if planted is None:
            continue
        margin = float(np.max(np.abs(planted - want))) / (RTOL * scale)
        margins[key] = margin
        ctx.true(f"{key}: rank 0's share counted twice fails the comparison (margin > 1)",
                 margin > 1, detail=f"margin {margin:.3g}")
    for key in ("model fisher", "model Var(I1)", "model Var(I2) hessian"):
        if "planted " + key in got:
            ctx.close(f"{key}: planted result = one process on rank 0's inputs twice",
                      got["planted " + key], dup[key], 1e-12)
    ctx.record("quantities", len(one))
    ctx.record("double-count margins", margins)
    low = min(margins.values()) if margins else float("nan")
    return ctx.conclude(f"{len(one)} sharded quantities equal one process to 1e-13 of their "
                        f"terms; a planted double count exceeds the tolerance {low:.2g}-fold "
                        "or more")
