"""Families answer for themselves (issue 19): what is specific to a family is a method of
``Family`` with a generic default from its dense tensors, overridden by the categorical family's
O(K) direct forms and by the product's component-wise ones; no engine asks which family it holds.

The overrides are checked against the generic default on the same family (the dense ``I``, ``κ₄``
and ``K`` of its symbolic kernels: an independent route), and the O(K) route is checked to be
the one taken at K = 1000, where the dense route would need a K⁴ = 10¹² array.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import fisher_verify as fv
from fisher_verify._src.families import family as family_module
from fisher_verify._src.families.contractions import DenseContractions, OneHotContractions
from fisher_verify._src.models import mlp, mlp_bounds
from fisher_verify._src.networks.network import Network

ROOT = Path(fv.__file__).resolve().parent


def _family_classes() -> set[str]:
    """Names of every class in the package that is a Family (the base and its subclasses)."""
    from fisher_verify._src.families import product  # noqa: F401 - defines ProductFamily

    out: set[str] = set()
    todo: list[type] = [family_module.Family]
    while todo:
        cls = todo.pop()
        out.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return out


def _checked_names(node: ast.AST) -> list[str]:
    """The class names an isinstance/issubclass second argument mentions."""
    if isinstance(node, ast.Tuple):
        return [n for elt in node.elts for n in _checked_names(elt)]
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    return []


def family_checks_outside_families(root: Path) -> list[str]:
    """Every ``isinstance``/``issubclass`` on a subclass of ``Family``, and every duck-typed
    ``getattr(x, "components")``, in the package outside ``families/``: ``file:line: text``.

    ``isinstance(x, Family)`` itself (is this a family at all, to refuse a wrong argument) is no
    family-specific branch and is allowed."""
    special = _family_classes() - {"Family"}
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] == "families":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id in ("isinstance", "issubclass") and len(node.args) == 2:
                bad = [n for n in _checked_names(node.args[1]) if n in special]
            elif node.func.id in ("getattr", "hasattr") and len(node.args) >= 2:
                arg = node.args[1]
                bad = ([arg.value] if isinstance(arg, ast.Constant)
                       and arg.value in ("components", "blocks") else [])
            else:
                continue
            if bad:
                found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_family_specific_branch_outside_families() -> None:
    assert family_checks_outside_families(ROOT) == []


def test_the_family_check_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    """The scan must be able to fail: planted checks are found, families/ is exempt."""
    (tmp_path / "fisher").mkdir()
    (tmp_path / "families").mkdir()
    (tmp_path / "fisher" / "a.py").write_text(
        "from ..families.family import CategoricalFamily, Family\n"
        "def f(fam):\n"
        "    if isinstance(fam, CategoricalFamily):\n        return 1\n"
        "    if isinstance(fam, (int, fv._src.families.product.ProductFamily)):\n        return 2\n"
        "    if getattr(fam, 'components', None):\n        return 3\n"
        "    return isinstance(fam, Family)\n"
    )
    (tmp_path / "families" / "b.py").write_text(
        "def g(fam):\n    return isinstance(fam, CategoricalFamily)\n")
    found = family_checks_outside_families(tmp_path)
    assert [f.split(":")[1] for f in found] == ["3", "5", "7"]
    assert all(f.startswith("fisher/a.py") for f in found)


# --- the overrides equal the generic default -------------------------------------------------------


def _h(fam: Any, m: int, rng: np.random.Generator, scale: float = 2.0) -> torch.Tensor:
    h = rng.normal(size=(m, fam.dim)) * scale
    if fam.name == "normal_unknown_variance":
        h[:, 1] = -np.abs(h[:, 1]) - 0.5
    if fam.name == "product":
        h[:, 0] = rng.normal(size=m)
    return torch.as_tensor(h)


def _close(a: Any, b: Any, rtol: float = 1e-11) -> None:
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    scale = float(b.abs().max()) + 1e-300
    assert float((a - b).abs().max()) <= rtol * scale, (a, b)


@pytest.mark.parametrize("K", [2, 4, 6])
def test_categorical_contractions_equal_the_dense_default(K: int) -> None:
    """Every O(K) contraction of the categorical family equals the generic one computed from its
    dense symbolic I, κ₄ and K (K ≤ 8, where the symbolic kernels exist)."""
    fam = fv.family("categorical", K=K)
    rng = np.random.default_rng(K)
    m, r = 5, 3
    h = _h(fam, m, rng)
    fast, dense = fam.contractions(h), DenseContractions(fam, h)
    assert isinstance(fast, OneHotContractions) and fast.direct and not dense.direct
    u = torch.as_tensor(rng.normal(size=(m, r, K)))
    v = torch.as_tensor(rng.normal(size=(m, r, K)))
    # eq-6 quadratic forms: broadcasting (axis 1) and same-shape bilinear
    ut, vt = u.transpose(1, 2), v.transpose(1, 2)
    _close(fast.quad(ut[:, :, :, None], vt[:, :, None, :]), dense.quad(ut[:, :, :, None], vt[:, :, None, :]))
    _close(fast.bilinear(ut, vt), dense.bilinear(ut, vt))
    # thm-4: C[u⁴], C[u_r, u_s, u_r, u_s], κ₄[u, v, u, v] and the per-column form
    c4f, qf = fast.excess4(u)
    c4d, qd = dense.excess4(u)
    _close(c4f, c4d)
    _close(qf, qd)
    quad = dense.quad(ut[:, :, :, None], ut[:, :, None, :])
    _close(fast.excess4_mixed(u, quad), dense.excess4_mixed(u, quad))
    _close(fast.kappa4(u, v, u, v), dense.kappa4(u, v, u, v))
    J = torch.as_tensor(rng.normal(size=(m, K, 7)))
    for fourth in (False, True):
        a, b = fast.fisher_and_excess(J, fourth), dense.fisher_and_excess(J, fourth)
        _close(a[0], b[0])
        assert (a[1] is None) == (b[1] is None) == (not fourth)
        if fourth:
            _close(a[1], b[1])
    # thm-7: pairs of inputs and the rhs norms; thm-8: RᵀR = I
    G = torch.as_tensor(rng.normal(size=(m, m, K, K)))
    _close(fast.pair_rows(G), dense.pair_rows(G))
    _close(fast.excess_fro_norms(), dense.excess_fro_norms())
    _close(fast.fisher_fro_norms(), dense.fisher_fro_norms())
    R = fast.fisher_rows()
    _close(R.transpose(1, 2) @ R, dense.I)
    # thm-7 blocks: on its own rows s_k = e_k − p the categorical block equals the dense one
    # on the identity rows with G = J_a J_bᵀ (S = s G sᵀ from the same G)
    Gab = G[:2, 2:]  # (Ra, Rb, K, K)
    S_dense = Gab.permute(0, 2, 1, 3).clone()  # (Ra, K, Rb, K)
    sa, sb = fast.score_rows()[:2], fast.score_rows()[2:]
    S_fast = torch.einsum("akx,abxy,bjy->akbj", sa, Gab, sb).contiguous()
    ia, ib = torch.arange(2), torch.arange(2, m)
    _close(fast.pair_block(S_fast, ia, ib), dense.pair_block(S_dense, ia, ib))


@pytest.mark.parametrize("fam", [
    fv.family("product", components=[fv.family("categorical", K=3), fv.family("poisson")]),
    fv.family("product", components=[fv.family("bernoulli"), fv.family("normal_unknown_variance")]),
    fv.family("poisson"), fv.family("normal_unknown_variance"),
], ids=lambda f: f.label)
def test_kappa4_diagonal_override_equals_the_dense_kernel(fam: Any) -> None:
    """The product's component-wise κ₄[u⁴] and the scalar form equal the dense κ₄ contracted."""
    rng = np.random.default_rng(fam.dim)
    h = _h(fam, 4, rng)
    if fam.name == "product" and fam.factors[1].name == "normal_unknown_variance":
        h[:, 2] = -h[:, 2].abs() - 0.5
    u = torch.as_tensor(rng.normal(size=(4, 3, fam.dim)))
    k4 = torch.as_tensor(fam.kappa4(h.numpy()))
    ref = torch.einsum("mabcd,mra,mrb,mrc,mrd->mr", k4, u, u, u, u)
    _close(fam.kappa4_diagonal(h, u), ref)


def test_product_projected_moments_equal_the_generic_nodes() -> None:
    """The product's convolved moments equal the generic node route on its own product nodes."""
    from fisher_verify._src.families.higher_moments import node_moments

    fam = fv.family("product", components=[fv.family("bernoulli"), fv.family("categorical", K=3)])
    rng = np.random.default_rng(3)
    h = rng.normal(size=(3, fam.dim))
    U = rng.normal(size=(3, 2, fam.dim))
    _close(torch.as_tensor(fam.projected_central_moments(h, U, 8)),
           torch.as_tensor(node_moments(fam, h, U, 8)))


def test_factors_and_flags() -> None:
    cat, poi = fv.family("categorical", K=3), fv.family("poisson")
    prod = fv.family("product", components=[cat, poi])
    assert cat.factors == (cat,) and prod.factors == (cat, poi)
    assert prod.factor_blocks == (slice(0, 3), slice(3, 4))
    assert cat.softmax_core and not poi.softmax_core and not prod.softmax_core
    assert cat.contraction_entries() == 0 and poi.contraction_entries() == 1
    assert prod.contraction_entries() == 4**4


# --- the O(K) route is the one taken ---------------------------------------------------------------


def _refuse(*_: object, **__: object) -> object:
    raise AssertionError("a dense K×K (or larger) moment tensor was requested for K = 1000")


def test_categorical_k1000_never_builds_a_dense_moment_tensor(monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """At K = 1000 every engine quantity (diag I, Var(Î₁), Var(Î₂), thm-7 both sides, thm-8's
    rhs, the models path) runs without I(h), κ₄ or K of the family as dense arrays; the values
    match the direct forms written out here from the Jacobian (eq-6, thm-4)."""
    K = 1000
    fam = fv.family("categorical", K=K)
    rng = np.random.default_rng(0)
    net = Network.random((3, 4, K), activation="tanh", family=fam, rng=rng)
    X = rng.normal(size=(3, 3))
    # the independent reference, before the family is watched: exact dense I from the
    # Jacobian and p, in NumPy
    J = net.jacobian(X)  # (M, K, P)
    p = np.asarray(fam.mean(net.forward(X)))
    fisher_ref = np.zeros(J.shape[2])
    var1_ref = np.zeros(J.shape[2])
    for m in range(X.shape[0]):
        d = J[m] - p[m] @ J[m]  # centred scores on the support, (K, P)
        fisher_ref += p[m] @ d**2
        var1_ref += p[m] @ d**4 - (p[m] @ d**2) ** 2
    M = X.shape[0]
    fisher_ref /= M
    var1_ref /= M * M
    for name in ("fisher", "kappa3", "kappa4", "central_moment4", "kappa4_contract"):
        monkeypatch.setattr(fam, name, _refuse)
    d = mlp.diagonals(net, X, 1, device="cpu")
    _close(d.fisher, fisher_ref, 1e-10)
    _close(d.variance_1, var1_ref, 1e-10)
    assert np.all(np.isfinite(d.variance_2))
    bound = mlp_bounds.thm7_large(net, X, 1, device="cpu", method="exact")
    assert bound.lhs is not None and np.isfinite(bound.lhs) and np.isfinite(bound.rhs)
    b8 = mlp_bounds.thm8_large(net, X, 1, device="cpu", method="exact")
    assert np.isfinite(b8.rhs)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, K)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.as_tensor(net.weights[0][:, :-1]))
        model[0].bias.copy_(torch.as_tensor(net.weights[0][:, -1]))
        model[2].weight.copy_(torch.as_tensor(net.weights[1][:, :-1]))
        model[2].bias.copy_(torch.as_tensor(net.weights[1][:, -1]))
    diag = fv.exact_fisher(model, torch.as_tensor(X), fam, progress=False, diagonal=True)
    var1 = fv.variance(model, torch.as_tensor(X), fam, which="I1", n=1,
                                      progress=False, diagonal=True)
    for got, ref in ((diag, fisher_ref), (var1, var1_ref)):
        flat = []
        for layer, (lo, W) in enumerate(zip(net.offsets, net.weights)):
            block = ref[lo : lo + W.size].reshape(W.shape)  # (n_out, n_in + 1), bias last
            flat += [(got[f"{2 * layer}.weight"], block[:, :-1]), (got[f"{2 * layer}.bias"], block[:, -1])]
        for a, b in flat:
            _close(torch.as_tensor(a), torch.as_tensor(b), 1e-10)
