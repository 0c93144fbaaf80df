"""diag I(θ) of any model (fv.exact_fisher(..., diagonal=True)) side by side with the curvature libraries.

Issue 19's target: the diagonal (``model_fisher_diagonal`` before the face) at most 1.0× the
best peer at every size, first call in a fresh process included. Peers: BackPACK
``DiagGGNExact`` (the GGN of a summed cross-entropy is the categorical Fisher), nngeometry
``FIM(..., PMatDiag, "classif_logits")``,
ASDL ``fisher_exact`` diagonal (curvlinops has no diagonal of its own: its operator times the
identity costs P products, so it is left out). float64, one thread, categorical K = 10; an MLP
784-128-10 (tanh, P ≈ 1e5) and a CNN (two 3×3 convolutions, max pooling, two Linear layers).

Method: one process; each library's set-up (BackPACK's ``extend``, copies of the model, data
loaders) outside the timed region; rounds alternate the libraries (the order rotates each round)
so that a load change on the shared machine hits all of them alike; the table shows medians and
the median over rounds of the per-round ratio fv / best peer. ``--first`` also times each
library's first call in a fresh process (imports and set-up done before the clock starts).

Run with the interop environment (the peers installed) from the repository root:

    PYTHONPATH=. /path/to/interop/bin/python benchmarks/bench_models.py [--M 32 1000] [--first]
        [--first-rounds 5] [--clock wall|cpu]

``--first`` runs the first calls in alternating rounds of fresh processes (one library per
process) and prints the median over rounds of fv / best peer. ``--clock cpu`` times the process's
CPU time instead of wall time: on a loaded machine wall time also counts the waits for a core,
which weigh most on libraries that hand work to autograd's engine.

Measured 2 Dec 2026 on the shared 2-core machine under a load of 7-13 from other jobs (so the
single numbers move between runs; each cell is the median over rounds of the per-round ratio
fv / best peer, before = main's torch.func route, after = models/taps.py):

    model  M     best peer    before          after (three runs)
    mlp    32    BackPACK     2.2-3.9×        0.80×, 1.03×, 1.35× (1.88× with tests running)
    mlp    1000  BackPACK     0.9-1.1×        0.48-0.55×
    cnn    32    nngeometry   1.2-1.4×        0.75-0.86×
    cnn    1000  nngeometry   0.79×           0.73×
    first call, fresh process (byte code compiled, lazily loaded modules inside the call):
           mlp M=32: before 0.69 s in a plain process (torch.func imports torch._dynamo), 14-34 ms
           here; after 14-29 ms, no torch._dynamo import; nngeometry 10-15 ms, BackPACK
           60-140 ms. cnn M=32: after 0.26 s against nngeometry 0.32 s, BackPACK 0.73 s.

Issue 19, second pass (2 Dec 2026, load 6-10, interop env, main vs this branch run alternately
as separate processes; "after" = the whole-model ``mlp`` rule for diag I and Var(Î₁) of an
``nn.Sequential`` of Linear layers and element-wise activations (models/mlp_route.py: one forward
pass, ``G_l = (G_{l+1} W_{l+1}) ⊙ σ'(a_l)`` over cache-sized chunks of inputs, no reverse pass, no
self-check) and the light first-order import path; fv / best peer, medians over rounds):

    case                         clock  before (main)        after
    mlp M=32 vs BackPACK         cpu    1.23×, 1.27×, 1.25×, 1.23×   0.62×, 0.62×, 0.60×, 0.63×
                                        (fv 4.6 ms)          (fv 2.4-2.8 ms; BackPACK 3.5-4.6)
    mlp M=32 vs BackPACK         wall   1.10×, 1.12×, 1.35×  0.29×, 0.45×, 0.50×, 0.85×
    mlp M=1000 vs BackPACK       cpu    0.61-0.63×           0.42-0.47×
    first call mlp M=32          wall   1.14×, 0.81× vs      0.62×, 0.69× (fv 28.7 / 43.9 ms,
                                        nngeometry (48.7 /   nngeometry 43.2 / 61.8 ms;
                                        44.1 vs 36.6 / 46.1) 5 and 7 processes each)
    first call mlp M=32          cpu    0.71× (10.0 vs 14.0) 0.66× (9.8 vs 15.2 ms; 7 each)
    first call cnn M=32          wall   1.01×                0.94× (the layer route, unchanged)
    first call cnn M=32          cpu    0.82×                0.91× (same code: the spread)

The MLP's first call now imports none of models.taps, .linear, .kinks, .hessian,
families.losses, networks, SymPy or torch._dynamo (tests/test_models_taps.py); SymPy is still
imported by ``fv.family(...)`` itself (families/catalog.py), in the set-up outside the clock.
The mlp rule against the layer route it replaces, one process, alternating rounds, CPU time
(fisher = diag I, I1 = Var(Î₁)):

    784-128-10        M=32   fisher 0.52×  I1 0.55×    M=1000  fisher 0.82×  I1 0.60×
    784-1000-1000-10  M=32   fisher 0.65×  I1 0.68×    M=256   fisher 0.90×  I1 0.75×

No test asserts on these timings.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

K = 10


def mlp() -> Any:
    import torch.nn as nn

    return nn.Sequential(nn.Linear(784, 128), nn.Tanh(), nn.Linear(128, K))


def cnn() -> Any:
    import torch.nn as nn

    return nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 12 * 12, 20), nn.ReLU(),
                         nn.Linear(20, K))


def make(name: str, M: int, seed: int = 0) -> tuple[Any, Any]:
    """A float64 model in eval mode and M inputs."""
    import torch

    torch.manual_seed(seed)
    model = (mlp if name == "mlp" else cnn)().double().eval()
    shape = (M, 784) if name == "mlp" else (M, 1, 28, 28)
    return model, torch.randn(*shape, dtype=torch.float64)


def copy_of(model: Any) -> Any:
    import copy

    return copy.deepcopy(model)


# --- one call per library; everything before `def run` is set-up, outside the timed region ---


def setup_fv(model: Any, X: Any) -> Callable[[], Any]:
    import fisher_verify as fv

    fam = fv.family("categorical", K=K)

    def run() -> Any:
        # resolved at the call: the lazily loaded modules behind it count in the first call
        return fv.exact_fisher(model, X, fam, diagonal=True, progress=False)

    return run


def setup_backpack(model: Any, X: Any) -> Callable[[], Any]:
    import torch
    from backpack import backpack, extend
    from backpack.extensions import DiagGGNExact

    m = extend(copy_of(model))
    loss_fn = extend(torch.nn.CrossEntropyLoss(reduction="sum"))
    y = torch.zeros(X.shape[0], dtype=torch.long)  # the GGN does not depend on the labels

    def run() -> Any:
        with backpack(DiagGGNExact()):
            loss_fn(m(X), y).backward()
        return {k: p.diag_ggn_exact for k, p in m.named_parameters()}

    return run


def setup_nngeometry(model: Any, X: Any) -> Callable[[], Any]:
    import torch
    from nngeometry.metrics import FIM
    from nngeometry.object import PMatDiag

    m = copy_of(model)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X, torch.zeros(X.shape[0], dtype=torch.long)),
        batch_size=X.shape[0])

    def run() -> Any:
        return FIM(m, loader, PMatDiag, variant="classif_logits").get_diag()

    return run


def setup_asdl(model: Any, X: Any) -> Callable[[], Any]:
    import torch
    from asdl import FisherConfig, get_fisher_maker

    m = copy_of(model)
    y = torch.zeros(X.shape[0], dtype=torch.long)
    config = FisherConfig(fisher_type="fisher_exact", fisher_shapes=["diag"],
                          loss_type="cross_entropy", data_size=X.shape[0])
    maker = get_fisher_maker(m, config)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")

    def run() -> Any:
        logits = maker.setup_model_call(m, X)
        maker.setup_loss_call(loss_fn, logits, y)
        maker.forward_and_backward()
        return {n: mod.fisher.diag for n, mod in m.named_modules()
                if getattr(mod, "fisher", None) is not None}

    return run


LIBRARIES = {"fv": setup_fv, "backpack": setup_backpack, "nngeometry": setup_nngeometry,
             "asdl": setup_asdl}


def available(names: list[str]) -> list[str]:
    out = []
    for name in names:
        module = {"fv": "fisher_verify", "backpack": "backpack", "nngeometry": "nngeometry",
                  "asdl": "asdl"}[name]
        try:
            __import__(module)
        except ImportError:
            print(f"({name} not installed: left out)")
            continue
        out.append(name)
    return out


def check_same(runs: dict[str, Callable[[], Any]], M: int) -> None:
    """Every library's diagonal sums to fv's (a wrong set-up would time the wrong thing)."""
    import torch

    def total(v: Any) -> float:
        if isinstance(v, dict):
            return sum(total(t) for t in v.values())
        if hasattr(v, "weight"):  # ASDL's per-module Diag
            return total(v.weight) + (total(v.bias) if v.bias is not None else 0.0)
        return float(torch.as_tensor(v).sum())

    ref = total(runs["fv"]()) * M
    for name, run in runs.items():
        got = total(run()) * (M if name == "fv" else 1)
        if name in ("nngeometry", "asdl"):
            got *= M  # both divide by the number of inputs
        if abs(got - ref) > 1e-8 * abs(ref):
            print(f"warning: {name} sums to {got:.6g}, fv to {ref:.6g}")


#: the clock of the steady-state rounds: wall time, or with ``--clock cpu`` the CPU time of
#: the process (on a loaded machine, wall time also counts the waits for a core)
CLOCK: Callable[[], float] = time.perf_counter


def alternate(runs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds per call, library by library, in rounds whose order rotates."""
    names = list(runs)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = CLOCK()
            runs[name]()
            times[name].append(CLOCK() - start)
    return times


FIRST_CALL = """
import sys, time, warnings
warnings.filterwarnings("ignore")
import torch
torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
sys.path.insert(0, {here!r})
import bench_models as b
import fisher_verify
model, X = b.make({model!r}, {M})
run = b.LIBRARIES[{lib!r}](model, X)
clock = time.process_time if {cpu!r} else time.perf_counter
start = clock()
run()
print(clock() - start)
"""


def first_call(lib: str, model: str, M: int) -> float:
    """Seconds of the first call in a fresh process: the package imported and the set-up done
    before the clock, the modules a library loads lazily at its first call inside it. Byte
    code may be written (the installed peers have theirs), so a first, untimed process
    compiles the modules once."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    code = FIRST_CALL.format(here=here, model=model, M=M, lib=lib, cpu=CLOCK is time.process_time)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    """Run every case and print medians and ratios."""
    import torch

    warnings.filterwarnings("ignore")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--M", type=int, nargs="+", default=[32, 1000])
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    p.add_argument("--libraries", nargs="+", default=list(LIBRARIES))
    p.add_argument("--rounds", type=int, default=0,
                   help="alternating rounds (default: 15 at M <= 100, else 5)")
    p.add_argument("--first", action="store_true",
                   help="also time the first call of each library in a fresh process")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall time, or the process's CPU time (steady state and first calls)")
    p.add_argument("--first-rounds", type=int, default=5,
                   help="fresh processes per library for --first, in alternating rounds")
    args = p.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # nngeometry builds its factors in the default dtype
    libs = available(["fv", *[n for n in args.libraries if n != "fv"]])
    import fisher_verify

    print(f"fisher_verify from {fisher_verify.__file__}; torch {torch.__version__}, 1 thread, "
          f"float64, categorical K={K}, {args.clock} clock")
    print(f"{'model':<5} {'M':>5} " + " ".join(f"{n:>11}" for n in libs)
          + f" | {'fv/best':>7} {'best peer':>10}")
    for name in args.models:
        for M in args.M:
            model, X = make(name, M)
            runs = {lib: LIBRARIES[lib](model, X) for lib in libs}
            check_same(runs, M)
            rounds = args.rounds or (15 if M <= 100 else 5)
            times = alternate(runs, rounds)
            med = {n: statistics.median(t) for n, t in times.items()}
            peers = [n for n in libs if n != "fv"]
            best = min(peers, key=lambda n: med[n]) if peers else "fv"
            ratio = statistics.median(
                times["fv"][r] / min(times[n][r] for n in peers) for r in range(rounds)
            ) if peers else 1.0
            print(f"{name:<5} {M:>5} " + " ".join(f"{med[n] * 1e3:>9.2f}ms" for n in libs)
                  + f" | {ratio:>6.2f}× {best:>10}", flush=True)
    if args.first:
        rounds = args.first_rounds
        print(f"first call in a fresh process (median of {rounds} processes each, the libraries "
              "alternating; ratio: median over rounds of fv / best peer):")
        for name in args.models:
            M = args.M[0]
            for lib in libs:
                first_call(lib, name, M)  # compiles the byte code once
            times = {lib: [] for lib in libs}  # type: dict[str, list[float]]
            for r in range(rounds):
                for lib in libs[r % len(libs):] + libs[: r % len(libs)]:
                    times[lib].append(first_call(lib, name, M))
            peers = [n for n in libs if n != "fv"]
            cells = [f"{lib} {statistics.median(times[lib]) * 1e3:.1f} ms" for lib in libs]
            if peers:
                ratio = statistics.median(times["fv"][r] / min(times[n][r] for n in peers)
                                          for r in range(rounds))
                cells.append(f"fv/best {ratio:.2f}×")
            print(f"  {name} M={M}: " + ", ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
