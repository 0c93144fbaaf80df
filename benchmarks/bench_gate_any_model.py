"""The estimator gate's own cost on models that are not Eq. 3 MLPs (the any-module reference).

Run by hand from the repository root (not part of the tests), one thread:

    OMP_NUM_THREADS=1 python benchmarks/bench_gate_any_model.py

The estimator returns the exact diagonal (a constant), so the time is the gate's: preparing the
working copy (fisher_verify._src.models.as_network), the dense autograd Jacobian, the exact
statistics (eq-6, thm-4) and R reductions. Beside it: fv.exact_fisher(diagonal=True) on the same model
and data, and, on a tanh MLP, the Eq. 3 route against the any-module route.
"""

from __future__ import annotations

import time

import numpy as np
import torch

import fisher_verify as fv
from fisher_verify._src.testing.adapters import module_reference, sequential_reference
from fisher_verify._src.testing.gate_exact import exact_statistics

nn = torch.nn


def _statistics(net, X, P):
    V = np.random.default_rng(0).normal(size=(8, P))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    return exact_statistics(net, X, 1, 10, V, True)


def main() -> None:
    torch.set_num_threads(1)
    fam = fv.family("categorical", K=10)
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 13 * 13, 10))
    x = torch.randn(32, 1, 28, 28)
    y = torch.randint(0, 10, (32,))
    t = time.perf_counter()
    net = module_reference(cnn, fam, x).network
    prep = time.perf_counter() - t
    X = x.reshape(32, -1).double().numpy()
    t = time.perf_counter()
    net.jacobian(X)
    jac = time.perf_counter() - t
    t = time.perf_counter()
    _statistics(net, X, net.num_params)
    stats = time.perf_counter() - t
    t = time.perf_counter()
    diag = fv.exact_fisher(cnn, x, fam, progress=False, diagonal=True)
    engine = time.perf_counter() - t
    const = {k: v.float() for k, v in diag.items()}
    t = time.perf_counter()
    report = fv.check_estimator(lambda m, d: const, cnn, (x, y), family="categorical", replications=200,
                                   rtol=1e-4)
    gate = time.perf_counter() - t
    print(f"CNN P = {net.num_params}, M = 32, K = 10: prepare {prep:.2f} s, dense J {jac:.2f} s, exact "
          f"statistics {stats:.2f} s; whole gate (R = 200, constant estimate) {gate:.2f} s "
          f"[{report.cause}]; fv.exact_fisher(diagonal=True) {engine:.2f} s")
    mlp = nn.Sequential(nn.Linear(20, 50), nn.Tanh(), nn.Linear(50, 10))
    xm = torch.randn(32, 20)
    for name, make in (("Eq. 3 route", lambda: sequential_reference(mlp, fam).network),
                       ("any-module route", lambda: module_reference(mlp, fam, xm).network)):
        t = time.perf_counter()
        ref = make()
        _statistics(ref, xm.double().numpy(), ref.num_params)
        print(f"tanh MLP 20-50-10 (P = {ref.num_params}), M = 32: {name}: reference + exact statistics "
              f"{time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
