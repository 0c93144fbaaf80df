"""A family registered once is picked up everywhere (issue 19), and the families added for issue
18 (Rayleigh, Weibull, inverse gamma, log-normal) match SciPy's distributions, an independent
route, at the edges of their domains."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as ss

import fisher_verify as fv
from fisher_verify._src.families.registry import family_examples
from fisher_verify._src.fisher.tightness import DEFAULT_FAMILIES
from fisher_verify._src.report.figures import EXTENDED_PANELS, PAPER_PANELS, _h_grid
from fisher_verify._src.testing.strategies import FAMILY_POINTS


def _stability_cases() -> tuple:
    path = Path(__file__).resolve().parent.parent / "proofs" / "ext_kernel_stability.py"
    spec = importlib.util.spec_from_file_location("ext_kernel_stability_for_test", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.CASES


def test_every_registered_family_is_in_every_list() -> None:
    names = set(fv.family_names())
    assert {"rayleigh", "weibull", "inverse_gamma", "lognormal"} <= names
    assert {n for n, _ in family_examples()} == names
    assert {n for n, _, _ in FAMILY_POINTS} == names
    assert names <= {n for n, _ in DEFAULT_FAMILIES}
    assert {n for n, _ in PAPER_PANELS + EXTENDED_PANELS} == names
    assert names <= {c[0] for c in _stability_cases()}


_REGISTER_ONCE = r"""
import dataclasses, io, json, sys, contextlib
import numpy as np
sys.path.insert(0, {tests!r})
from fisher_verify._src.families import catalog

def twin(**params):
    return dataclasses.replace(catalog.bernoulli(**params), name="bernoulli_twin")

base = catalog.ENTRIES["bernoulli"]
catalog.register("bernoulli_twin", catalog.Entry(twin, {{}}, base.examples))
import fisher_verify as fv
from fisher_verify._src.fisher.tightness import DEFAULT_FAMILIES
from fisher_verify._src.report.figures import EXTENDED_PANELS, PAPER_PANELS, _h_grid
from fisher_verify._src.testing.strategies import FAMILY_POINTS
from fisher_verify._src.commands.families import run
import test_families
import argparse
out = io.StringIO()
with contextlib.redirect_stdout(out):
    run(argparse.Namespace(json=True))
fam = fv.family("bernoulli_twin")
h = np.array([[0.3], [-2.0]])
print(json.dumps({{
    "names": fv.family_names(),
    "strategies": [n for n, _, _ in FAMILY_POINTS],
    "tightness": [n for n, _ in DEFAULT_FAMILIES],
    "figures": [n for n, _ in PAPER_PANELS + EXTENDED_PANELS],
    "grid": len(_h_grid("bernoulli_twin")),
    "tests": [n for n, _, _ in test_families.CATALOG],
    "cli": [r["name"] for r in json.loads(out.getvalue())],
    "fisher": [fam.fisher(h).tolist(), fv.family("bernoulli").fisher(h).tolist()],
    "label": fam.label,
}}))
"""


def test_a_family_registered_once_is_picked_up_everywhere() -> None:
    """Registering one catalog entry (before the consumers are imported, in a fresh process)
    puts the family in the tests' catalog, the Hypothesis points, the tightness sweep, the
    report's figures and the ``families`` command, and ``fv.family`` builds it."""
    import json
    import subprocess
    import sys

    tests = str(Path(__file__).resolve().parent)
    out = subprocess.run([sys.executable, "-c", _REGISTER_ONCE.format(tests=tests)],
                         capture_output=True, text=True, check=True, timeout=300)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    for where in ("names", "strategies", "tightness", "figures", "tests", "cli"):
        assert "bernoulli_twin" in got[where], where
    assert got["grid"] == 300
    assert got["label"] == "bernoulli_twin"
    twin, bernoulli = (np.array(f) for f in got["fisher"])
    np.testing.assert_allclose(twin, bernoulli, rtol=1e-14, atol=0)  # the same F(h)


def test_register_refuses_a_bad_name_or_entry() -> None:
    from fisher_verify._src.families import catalog

    with pytest.raises(fv.errors.ParameterError, match="identifier"):
        catalog.register("product", catalog.ENTRIES["bernoulli"])
    with pytest.raises(fv.errors.ParameterError, match="Entry"):
        catalog.register("x", {"builder": None})  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "ex"), family_examples(), ids=[n for n, _ in family_examples()])
def test_every_example_lies_in_its_domain(name, ex) -> None:
    """The registry's points, ranges and edge points are valid natural parameters (a wrong sign
    would be refused by check_natural), and each scalar family has a figure grid inside it."""
    fam = fv.family(name, **ex.params)
    fam.check_natural(np.array(ex.point))
    for h in ex.extreme:
        fam.check_natural(np.array(h))
        assert np.all(np.isfinite(fam.central_moment4(np.array(h))))
    for draw in (*ex.draws, *ex.limits):  # the benchmark's edge values are accepted values
        fv.family(name, **draw)
    fam.check_natural(np.array([lo for lo, _ in ex.ranges]))
    fam.check_natural(np.array([hi for _, hi in ex.ranges]))
    if ex.grid is not None:
        fam.check_natural(_h_grid(name)[:, None])


def _central_from_raw(raw: list[float]) -> tuple[float, float, float, float, float]:
    """E t, Var t and E (t − E t)⁴ from SciPy's closed-form raw moments E tʲ, j = 1..4 (summed
    in mpmath, so only the inputs' own rounding remains), and the size of the terms that cancel
    in Var t and in the fourth moment (each input carries a rounding of ε times its size)."""
    import mpmath

    with mpmath.workdps(50):
        m = [mpmath.mpf(1)] + [mpmath.mpf(v) for v in raw]
        mean = m[1]
        var = m[2] - mean**2
        m4 = m[4] - 4 * mean * m[3] + 6 * mean**2 * m[2] - 3 * mean**4
        var_terms = m[2] + mean**2
        m4_terms = m[4] + 4 * abs(mean * m[3]) + 6 * mean**2 * m[2] + 3 * mean**4
        return float(mean), float(var), float(m4), float(var_terms), float(m4_terms)


CASES = [
    # (family, params, h, E tʲ for j = 1..4 from a SciPy distribution's closed-form moments)
    ("rayleigh", {}, -1e-4,
     lambda h: [ss.rayleigh(scale=math.sqrt(-0.5 / h)).moment(2 * j) for j in range(1, 5)]),
    ("rayleigh", {}, -300.0,
     lambda h: [ss.rayleigh(scale=math.sqrt(-0.5 / h)).moment(2 * j) for j in range(1, 5)]),
    ("weibull", {"shape": 3.0}, -1e-3,
     lambda h: [ss.weibull_min(3.0, scale=(-1 / h) ** (1 / 3)).moment(3 * j)
                for j in range(1, 5)]),
    ("weibull", {"shape": 4.0}, -50.0,
     lambda h: [ss.weibull_min(4.0, scale=(-1 / h) ** 0.25).moment(4 * j) for j in range(1, 5)]),
    # 1/y of an inverse gamma(α, scale β) is gamma(α, scale 1/β)
    ("inverse_gamma", {"shape": 0.5}, -1e-3,
     lambda h: [ss.gamma(0.5, scale=-1 / h).moment(j) for j in range(1, 5)]),
    ("inverse_gamma", {"shape": 7.5}, -400.0,
     lambda h: [ss.gamma(7.5, scale=-1 / h).moment(j) for j in range(1, 5)]),
    # log y of a log-normal(μ = σ²h, σ) is normal(μ, σ)
    ("lognormal", {"sigma": 0.25}, 300.0,
     lambda h: [ss.norm(0.0625 * h, 0.25).moment(j) for j in range(1, 5)]),
    ("lognormal", {"sigma": 2.0}, -3.0,
     lambda h: [ss.norm(4 * h, 2.0).moment(j) for j in range(1, 5)]),
]


@pytest.mark.parametrize(("name", "params", "h", "raw"), CASES,
                         ids=[f"{c[0]}{c[1]}@{c[2]}" for c in CASES])
def test_new_families_match_scipy_moments(name, params, h, raw) -> None:
    """η, I and K of each new family against SciPy's closed-form moments, near the boundary
    h → 0⁻ and far from it; and the exact-expectation route (Gauss nodes after the change of
    variable t(y)) against the same."""
    fam = fv.family(name, **params)
    mean, var, m4, var_terms, m4_terms = _central_from_raw(raw(h))
    # the reference's own error: SciPy's moments round at ~ε of their size, amplified by the
    # cancellation of the raw-to-central sum (the lognormal at h = 300: 10⁷)
    eps = 64 * np.finfo(float).eps
    hv = np.array([h])
    np.testing.assert_allclose(fam.mean(hv)[0], mean, rtol=1e-12)
    np.testing.assert_allclose(fam.fisher(hv)[0, 0], var, rtol=1e-10, atol=eps * var_terms)
    np.testing.assert_allclose(
        fam.central_moment4(hv)[0, 0, 0, 0], m4, rtol=1e-9, atol=eps * m4_terms
    )
    nodes, w, bound = fam.expectation_nodes(hv, degree=4)
    assert bound == 0.0
    r = nodes[..., 0] - mean
    np.testing.assert_allclose(np.sum(w * r**2), var, rtol=1e-9, atol=eps * var_terms)
    np.testing.assert_allclose(np.sum(w * r**4), m4, rtol=1e-9, atol=eps * m4_terms)
