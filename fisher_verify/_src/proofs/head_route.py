"""The independent route for a network with a link head (``ext-links``, ``ext-ggn-noncanonical``).

ℓ(θ; y) = log p(y | f(θ; x)) written from the *head's own* textbook density with
``torch.distributions`` (a normal with mean μ and standard deviation e^s or √σ², a Poisson with
rate softplus(u), a Bernoulli with probability p): neither the link's printed ``g, g′, g″`` nor
the family's kernels are used. Scores and negative Hessians in θ come from ``torch.func`` at
nodes in y whose weighted sums are exact expectations:

* normal: Gauss–Hermite nodes in y built from (μ, σ) of the head (every per-sample term is a
  polynomial in y of degree ≤ 8 for the covariances; 12 nodes are exact to degree 23);
* Poisson: the sum over y = 0..Y, with the tail of E[(1 + y)⁴] beyond Y bounded by a geometric
  series (``ratio ((y+2)/(y+1))⁴ λ/(y+1)`` decreases in y), recorded with the result;
* gamma (shape 2, rate e^u or softplus(u)): generalized Gauss–Laguerre nodes in rate·y
  (:func:`gen_laguerre_rule`, Golub–Welsch), exact for the polynomials in y the terms are;
* Beta (second shape known, concentration softplus(u)): the terms are polynomials in log y;
  weights at five nodes match E[(log y)^k], k ≤ 4, from mpmath quadrature at 40 digits;
* Bernoulli: both labels.
"""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np

__all__: list[str] = []  # nothing for other rooms

#: Gauss–Hermite nodes for the normal heads: exact for polynomials in y of degree ≤ 23.
GH_POINTS = 12
#: the Beta head's known second shape (the catalog's default)
BETA_B = 2.0
#: where the Beta rule puts its nodes: log y = c · E[log y] for these c (five distinct values)
BETA_NODE_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5)


def _softplus(u: Any) -> Any:
    import torch

    return torch.nn.functional.softplus(u, beta=1.0, threshold=1000.0)


def _normal(mu: Any, var: Any, y: Any) -> Any:
    import torch

    return torch.distributions.Normal(mu, torch.sqrt(var), validate_args=False).log_prob(y)


def _poisson(lam: Any, y: Any) -> Any:
    import torch

    return torch.distributions.Poisson(lam, validate_args=False).log_prob(y)


def _gamma(rate: Any, y: Any, shape: float = 2.0) -> Any:
    import torch

    return torch.distributions.Gamma(torch.as_tensor(shape, dtype=rate.dtype), rate,
                                     validate_args=False).log_prob(y)


def _beta(alpha: Any, y: Any, b: float = BETA_B) -> Any:
    import torch

    return torch.distributions.Beta(alpha, torch.as_tensor(b, dtype=alpha.dtype),
                                    validate_args=False).log_prob(y)


def _bernoulli(p: Any, y: Any) -> Any:
    import torch

    return torch.distributions.Bernoulli(probs=p, validate_args=False).log_prob(y)


#: head name -> (log-density of one unit's label given the unit's head outputs, kind of label)
HEAD_DENSITIES: dict[str, Any] = {
    "mean-logstd": (lambda f, y: _normal(f[0], (2 * f[1]).exp(), y), "normal"),
    "mean-var": (lambda f, y: _normal(f[0], f[1], y), "normal"),
    "softplus-rate": (lambda f, y: _poisson(_softplus(f[0]), y), "poisson"),
    "logit": (lambda f, y: _bernoulli(f[0], y), "bernoulli"),
    # gamma of shape 2 (the catalog's default) with rate e^u or softplus(u)
    "exp-rate": (lambda f, y: _gamma(f[0].exp(), y), "gamma"),
    "softplus-neg": (lambda f, y: _gamma(_softplus(f[0]), y), "gamma"),
    # a Beta head: concentration α = softplus(u), second shape known (the catalog's beta)
    "softplus-neg:beta": (lambda f, y: _beta(_softplus(f[0]), y), "beta"),
}


def head_key(net: Any) -> str:
    """The key of :data:`HEAD_DENSITIES` for a linked network: the link's name, and the family
    of one unit where the link maps onto several (``softplus-neg`` onto gamma or beta)."""
    fam = net.link.unit.family[0]
    return f"{net.link.name}:beta" if fam == "beta" else net.link.name


def _beta_rule(alpha: float, b: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Nodes y and weights with Σ w g(log y) = E[g(log y)] for every polynomial g of degree ≤ 4
    under Beta(α, b): the moments E[(log y)^k], k ≤ 4, by mpmath quadrature of the density at
    40 digits (in x = −log y), matched by weights at five fixed nodes (a Vandermonde solve in mpmath). The
    per-sample terms of a Beta head are polynomials of degree ≤ 2 in log y, their covariances
    of degree ≤ 4. Returns the largest quadrature error estimate as the third value."""
    with mpmath.workdps(40):
        a, bb = mpmath.mpf(alpha), mpmath.mpf(b)
        norm = mpmath.beta(a, bb)
        moments, err = [], mpmath.mpf(0)
        for k in range(5):
            # y = e^(−x): the log singularity at y = 0 becomes a smooth, decaying integrand
            value, e = mpmath.quad(lambda x, k=k: (-x) ** k * mpmath.exp(-a * x)
                                   * (-mpmath.expm1(-x)) ** (bb - 1), [0, 1, mpmath.inf],
                                   error=True)
            moments.append(value / norm)
            err = max(err, e / norm)
        # nodes in log y around its mean (E[log y] < 0), so that the weights stay moderate
        ys = [float(mpmath.exp(moments[1] * c)) for c in BETA_NODE_SCALES]
        s = [mpmath.log(mpmath.mpf(repr(v))) for v in ys]
        V = mpmath.matrix([[sj**k for sj in s] for k in range(5)])
        w = mpmath.lu_solve(V, mpmath.matrix(moments))
        return np.array(ys), np.array([float(v) for v in w]), float(err)


def poisson_tail(lam: float, last: int, power: int = 4) -> float:
    """A bound on Σ_{y > last} (1 + y)^power λ^y e^{−λ}/y!: the first omitted term over
    ``1 − ρ``, ``ρ`` the largest ratio of consecutive terms beyond ``last`` (inf if ρ ≥ 1)."""
    y = last + 1
    rho = ((y + 2) / (y + 1)) ** power * lam / (y + 1)
    if rho >= 1:
        return math.inf
    first = math.exp(power * math.log1p(y) + y * math.log(lam) - lam - math.lgamma(y + 1))
    return first / (1 - rho)


def head_nodes(name: str, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Nodes y (S,) and weights (S,) of the head's law at one head output ``f`` (one unit,
    ``name`` a key of :data:`HEAD_DENSITIES`), and the bound on what the nodes leave out (0 when
    exact; the Beta rule's quadrature error estimate)."""
    kind = HEAD_DENSITIES[name][1]
    if kind == "normal":
        mu = float(f[0])
        sd = math.exp(float(f[1])) if name == "mean-logstd" else math.sqrt(float(f[1]))
        x, w = np.polynomial.hermite.hermgauss(GH_POINTS)
        return mu + math.sqrt(2.0) * sd * x, w / math.sqrt(math.pi), 0.0
    if kind == "poisson":
        lam = float(np.logaddexp(0.0, float(f[0])))
        last = int(lam + 40 * math.sqrt(lam) + 40)
        while poisson_tail(lam, last) > 1e-300 and last < 10_000:
            last = 2 * last
        ys = np.arange(last + 1, dtype=float)
        logw = ys * math.log(lam) - lam - np.array([math.lgamma(v + 1) for v in ys])
        return ys, np.exp(logw), poisson_tail(lam, last)
    if kind == "beta":
        return _beta_rule(float(np.logaddexp(0.0, float(f[0]))), BETA_B)
    if kind == "gamma":
        # generalized Gauss–Laguerre in x = rate·y with weight x^(k−1) e^(−x): exact for
        # polynomials in y of degree ≤ 2·GH_POINTS − 1 (the terms are polynomials of degree ≤ 4)
        u = float(f[0])
        rate = math.exp(u) if name == "exp-rate" else float(np.logaddexp(0.0, u))
        x, w = gen_laguerre_rule(GH_POINTS, 2.0 - 1.0)
        return x / rate, w / math.gamma(2.0), 0.0
    p = float(f[0])
    return np.array([0.0, 1.0]), np.array([1.0 - p, p]), 0.0


def gen_laguerre_rule(n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point generalized Gauss–Laguerre rule for the weight
    ``x^alpha e^(−x)`` on (0, ∞), by Golub–Welsch: the eigenvalues of the Jacobi matrix of the
    monic Laguerre recurrence (diagonal ``2k + alpha + 1``, off-diagonal ``sqrt(k (k + alpha))``)
    and ``Γ(alpha + 1)`` times the squared first components of its eigenvectors. NumPy only, so
    the main job needs no SciPy (``ext-links``' gamma head)."""
    k = np.arange(n, dtype=float)
    off = np.sqrt(k[1:] * (k[1:] + alpha))
    jacobi = np.diag(2.0 * k + alpha + 1.0) + np.diag(off, 1) + np.diag(off, -1)
    nodes, vectors = np.linalg.eigh(jacobi)
    return nodes, math.gamma(alpha + 1.0) * vectors[0] ** 2


def head_terms(net: Any, x: np.ndarray, ys: np.ndarray) -> dict[str, np.ndarray]:
    """Per label ``y`` (S,) at one input ``x`` of a one-unit linked network: the score
    ``∂ℓ/∂θ`` (S, P), the negative Hessian ``−∂²ℓ/∂θ²`` (S, P, P), and the head's curvature
    ``−∂²ℓ/∂f²`` (S, n, n) with ``J_f`` (n, P), all by ``torch.func`` from the head's density."""
    import torch
    from torch.func import grad, hessian, jacrev, vmap

    density = HEAD_DENSITIES[head_key(net)][0]
    xt = torch.as_tensor(np.asarray(x, dtype=float))
    theta = torch.as_tensor(net.theta)
    yt = torch.as_tensor(np.asarray(ys, dtype=float))

    def head(th: Any) -> Any:
        return net.base.torch_forward(th, xt)

    def loglik(th: Any, y: Any) -> Any:
        return density(head(th), y)

    def loglik_f(f: Any, y: Any) -> Any:
        return density(f, y)

    f0 = head(theta).detach()
    return {
        "score": vmap(grad(loglik), in_dims=(None, 0))(theta, yt).detach().numpy(),
        "neg_hessian": -vmap(hessian(loglik), in_dims=(None, 0))(theta, yt).detach().numpy(),
        "head_curvature": -vmap(hessian(loglik_f), in_dims=(None, 0))(f0, yt).detach().numpy(),
        "J_f": jacrev(head)(theta).detach().numpy(),
    }


def _mp_softplus(u: Any) -> Any:
    return mpmath.log1p(mpmath.exp(u))


#: each link's textbook form in mpmath, one unit: (u tuple) -> list of natural parameters
_MP_FORMS: dict[str, Any] = {
    "logit": lambda u: [mpmath.log(u[0] / (1 - u[0]))],
    "rate": lambda u: [mpmath.log(u[0])],
    "softplus-rate": lambda u: [mpmath.log(_mp_softplus(u[0]))],
    "exp-rate": lambda u: [-mpmath.exp(u[0])],
    "softplus-neg": lambda u: [-_mp_softplus(u[0])],
    "softplus-beta": lambda u: [-_mp_softplus(u[0]), -_mp_softplus(u[1])],
    "mean-logstd": lambda u: [u[0] / mpmath.exp(2 * u[1]), -1 / (2 * mpmath.exp(2 * u[1]))],
    "mean-var": lambda u: [u[0] / u[1], -1 / (2 * u[1])],
    "mean-shared-var": lambda u: [*(m / u[-1] for m in u[:-1]), -1 / (2 * u[-1])],
}


def link_reference_mp(name: str, u: list[float], dps: int = 40) -> tuple[Any, Any, Any]:
    """g, g′, g″ of one unit of link ``name`` (``eps``/``lower`` 0) at ``u``, from its textbook
    form by mpmath's numerical differentiation at ``dps`` digits: arrays (k,), (k, k), (k, k, k)."""
    form = _MP_FORMS[name]
    k = len(u)
    with mpmath.workdps(dps):
        point = [mpmath.mpf(v) for v in u]
        g = np.array([float(v) for v in form(point)])
        jac = np.zeros((k, k))
        hes = np.zeros((k, k, k))
        for a in range(k):
            def comp(*args: Any, a: int = a) -> Any:
                return form(list(args))[a]

            for b in range(k):
                order = [0] * k
                order[b] = 1
                jac[a, b] = float(mpmath.diff(comp, point, tuple(order)))
                for c in range(k):
                    order2 = [0] * k
                    order2[b] += 1
                    order2[c] += 1
                    hes[a, b, c] = float(mpmath.diff(comp, point, tuple(order2)))
    return g, jac, hes


def linked_example(name: str, act: str, rng: Any) -> Any:
    """A random linked network of widths (2, 3, n) for the head ``name`` (a key of
    :data:`HEAD_DENSITIES`) with its outputs inside the link's domain (a probability head in
    (0, 1), a variance head > 0)."""
    from ..families.links import link
    from ..families.registry import family
    from ..networks.linked import LinkedNetwork
    from ..networks.network import Network

    if name.endswith(":beta"):
        name = name.split(":")[0]
        L = link(name, family=family("beta", b=BETA_B))
    else:
        L = link(name)
    base = Network.random((2, 3, L.n), act, L.family, 0.8, rng)
    w = [W.copy() for W in base.weights]
    if name == "logit":  # p = 0.5 + a·w with |a| ≤ 1 (tanh, sigmoid) and Σ|w| = 0.4
        w[-1][:, :-1] *= 0.4 / np.sum(np.abs(w[-1][:, :-1]), axis=1, keepdims=True)
        w[-1][:, -1] = 0.5
    if name == "mean-var":
        w[-1][1, -1] = 1.5
    return LinkedNetwork(Network(w, act, L.family), L)
