"""Derivation cost (cold, warm from the disk cache, in-process), kernel throughput, and the
time of ``fisher-verify derive`` across each family's parameter range.

Run by hand: ``python benchmarks/bench_families.py`` (everything) or
``python benchmarks/bench_families.py derive`` (the parameter-range table only). Each cold/warm
figure is measured in a fresh Python process, so it includes what a CLI call pays; "cold" uses an
empty cache folder of its own, "warm" the same folder a second time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from fisher_verify._src.families.catalog import MAX_CLASSES
from fisher_verify._src.families.registry import family_examples

# every family of the registry at its example parameters, and the categorical at the largest K
# of its symbolic kernels
FAMILIES = [(name, dict(ex.params)) for name, ex in family_examples()] + [("categorical", {"K": 8})]

SNIPPET = """
import time, numpy as np
t0 = time.perf_counter()
import fisher_verify as fv
fam = fv.family({name!r}, **{params!r})
h0 = np.zeros((1, fam.dim))
fam.central_moment4(h0 - fam.domain_shift(h0, 0.5))  # -0.5 each where the domain is a box of signs
print(time.perf_counter() - t0)
"""


def _run(name: str, params: dict, cache: str) -> float:
    env = dict(os.environ, FISHER_VERIFY_CACHE=cache)
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET.format(name=name, params=params)],
        capture_output=True, text=True, env=env, check=True,
    )
    return float(out.stdout.strip())


# derive across the parameter range: every accepted value answers in seconds, or is refused
DERIVE_RANGE = [
    (name, [f"{k}={v}" for k, v in params.items()])
    for name, ex in family_examples() if ex.limits
    for params in (ex.params, *ex.limits)
] + [("categorical", [f"K={MAX_CLASSES * 10}"])]  # beyond the limit: refused at once, by name

FAMILY_SNIPPET = """
import time, numpy as np
t0 = time.perf_counter()
import fisher_verify as fv
fam = fv.family({name!r}, **{params!r})
h0 = np.zeros((1, fam.dim))
fam.fisher(h0 - fam.domain_shift(h0, 0.5))  # -0.5 each where the domain is a box of signs
print(time.perf_counter() - t0)
"""
# the registry's parameter limits (a dense fisher at K = 10^6 is refused at once, by name)
FAMILY_RANGE = [(name, params) for name, ex in family_examples() for params in ex.limits]


def _timed(argv: list[str], cache: str) -> tuple[float, int, str]:
    env = dict(os.environ, FISHER_VERIFY_CACHE=cache)
    t0 = time.perf_counter()
    try:
        out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t0, -1, "over 600 s (no answer)"
    last = (out.stdout + out.stderr).strip().splitlines()
    return time.perf_counter() - t0, out.returncode, last[-1][:60] if last else ""


def derive_table() -> None:
    """Cold and warm wall time of ``fisher-verify derive NAME --param P`` (identities included)."""
    cli = [sys.executable, "-m", "fisher_verify.cli", "derive"]
    print(f"{'derive':<36} {'cold s':>7} {'warm s':>7} {'exit':>4}   first words when refused")
    for name, param in DERIVE_RANGE:
        with tempfile.TemporaryDirectory() as cache:
            flags = [f for p in param for f in ("--param", p)]  # one flag per parameter
            cold, code, text = _timed([*cli, name, *flags], cache)
            warm, _, _ = _timed([*cli, name, *flags], cache)
        note = text if code in (2, -1) else ""
        print(f"{name + ' ' + ','.join(param):<36} {cold:7.2f} {warm:7.2f} {code:>4}   {note}")
    print(f"\n{'fv.family(...) + fisher kernel':<36} {'cold s':>7} {'warm s':>7}")
    for name, params in FAMILY_RANGE:
        with tempfile.TemporaryDirectory() as cache:
            code = FAMILY_SNIPPET.format(name=name, params=params)
            cold = _timed([sys.executable, "-c", code], cache)[0]
            warm = _timed([sys.executable, "-c", code], cache)[0]
        print(f"{name + str(params):<36} {cold:7.2f} {warm:7.2f}")


def main() -> None:
    print(f"{'family':<32} {'cold s':>8} {'warm s':>8}   (fresh process: import + derive + first kernel)")
    with tempfile.TemporaryDirectory() as cache:
        for name, params in FAMILIES:
            cold = _run(name, params, cache)
            warm = _run(name, params, cache)
            print(f"{name + str(params or ''):<32} {cold:8.2f} {warm:8.2f}")
    import fisher_verify as fv

    t0 = time.perf_counter()
    import fisher_verify.cli  # noqa: F401

    print(f"\nimport fisher_verify.cli: {time.perf_counter() - t0:.3f} s (no derivation at import)")
    rng = np.random.default_rng(0)
    print(f"\n{'kernel throughput (NumPy, batch 10^6)':<40} {'s':>8}")
    for name, params in (("bernoulli", {}), ("categorical", {"K": 8}), ("normal_unknown_variance", {})):
        fam = fv.family(name, **params)
        h = rng.normal(size=(10**6 if fam.dim < 8 else 10**5, fam.dim))
        if name == "normal_unknown_variance":
            h[:, 1] = -np.abs(h[:, 1]) - 0.1
        for q in ("fisher", "central_moment4"):
            getattr(fam, q)(h[:10])
            t0 = time.perf_counter()
            getattr(fam, q)(h)
            print(f"{fam.label + '.' + q + f' (n={len(h)})':<40} {time.perf_counter() - t0:8.3f}")
    fam = fv.family("categorical", K=10_000)
    h = rng.normal(size=10_000)
    u = rng.normal(size=(4, 10_000))
    t0 = time.perf_counter()
    for _ in range(100):
        fam.kappa4_contract(h, *u)
    print(f"{'categorical K=10^4 kappa4_contract':<40} {(time.perf_counter() - t0) / 100:8.5f} (per call, O(K))")


if __name__ == "__main__":
    if sys.argv[1:] == ["derive"]:
        derive_table()
    else:
        main()
        derive_table()
