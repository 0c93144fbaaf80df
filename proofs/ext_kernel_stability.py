"""ext-kernel-stability: every family's float kernels at extreme natural parameters (beyond
the paper: the README's "stable at extreme parameters").

At |h| in the hundreds (softmax logits of ±1000) a textbook formula overflows or cancels to 0
(``log(1+e^h)``, ``p(1−p)`` with ``p = 1 − e^{−700}``); the generated kernels are written with
stable functions. This statement evaluates F, η, I, κ₃, κ₄ and K of every family of the
catalog (and a product, and the categorical family beyond the symbolic limit, whose kernels
come from the one-hot moments) at such points and compares them with an mpmath reference
computed at enough digits to resolve e^{−2|h|} (``2|h|/ln 10 + 60``):

* countable and continuous supports: the family's symbolic derivation with every stable
  function replaced by its textbook form (:meth:`SafeFunction.naive`), so the reference
  shares no stabilisation with the kernel;
* finite supports (Bernoulli, binomial, categorical): the moments straight from the density,
  ``Σ_y p(y) (t(y) − η)^{⊗k}`` with ``p`` from ``t(y)ᵀh − F(h)`` in mpmath.

**Tolerance.** Relative 1e-12 of the magnitude of the terms that make up each quantity: its
own largest entry, and for the cumulants the central moments that bound every term
(``E‖t−η‖³ ≤ (tr I · Σ_ab K_aabb)^{1/2}`` for κ₃, ``max(|K|, |I|²)`` for κ₄). Where those are
tiny (Bernoulli at h = ±700: everything is ~e^{−700}) the check is as strict, relatively, as
at h = 0; where a cumulant is a cancellation of terms of order 1 (κ₃ of a categorical with
two equal logits), float64 can only resolve it to that order, and the tolerance says so.
"""

import math

import numpy as np

from fisher_verify.proofs import statement

QUANTITIES = ("log_partition", "eta", "fisher", "kappa3", "kappa4", "central_moment4")

#: (name, params, points h): every family of the registry at its example parameters and its
#: edge points (``Examples.extreme``: |h| in the hundreds, or next to the boundary h = 0), each
#: inside the natural domain with every true value representable in float64 (Poisson's
#: K = λ + 3λ² overflows above h ≈ 354); then the categorical family beyond the symbolic limit.
def _cases():
    from fisher_verify._src.families.registry import family_examples

    return (*((name, dict(ex.params), ex.extreme) for name, ex in family_examples()),
            ("categorical", {"K": 12}, ((1000.0, -1000.0, 0.0, 300.0, -300.0, 700.0, -700.0,
                                         999.0, -5.0, 0.5, 2.0, 1000.0),)))


CASES = _cases()

def _family(name, params):
    import fisher_verify as fv

    return fv.family(name, **params)


#: enough digits for e^{−2|h|} at |h| = 1000, the largest edge point where an exponential
#: cancels; beyond it (a beta at α = 10⁶, h = −10⁶) nothing of size e^{−|h|} enters, and
#: 2|h|/ln 10 digits would be ~10⁶
MAX_DPS = 1000


def _dps(h, exponential=True):
    """Digits of the reference: enough for e^{−2|h|} where the textbook form holds exponentials
    of h; otherwise (log-gamma, ₀F₁) its cancellations are powers of |h| (at most |h|⁴ in a
    fourth derivative), resolved by 5 more digits per decade of |h|."""
    size = max(abs(v) for v in h)
    if not exponential:
        return int(5 * math.log10(1.0 + size)) + 60
    return min(int(2 * size / math.log(10)) + 60, MAX_DPS)


#: the textbook-form functions of each family, printed once for all its edge points (a
#: full covariance's κ₄ and K, a ₀F₁ in three variables, take seconds to print)
_NAIVE = {}


def _naive_functions(fam):
    """Per quantity: the textbook form lambdified for mpmath, and whether it holds
    exponentials of h; built once per family (SymPy's derivatives of a ₀F₁ in three variables
    take seconds, the evaluation at each point milliseconds)."""
    import sympy as sp

    from fisher_verify._src.symbolic.safe import SafeFunction

    if fam.label not in _NAIVE:
        out = {}
        for q in QUANTITIES:
            expr = fam.symbolic(q)
            entries = [expr] if isinstance(expr, sp.Expr) else list(sp.flatten(sp.Array(expr)))
            naive = [e.replace(lambda z: isinstance(z, SafeFunction),
                               lambda z: type(z).naive(*z.args)) for e in entries]
            out[q] = (sp.lambdify(list(fam.definition.h), naive, modules="mpmath", cse=True),
                      any(e.has(sp.exp) for e in naive))
        _NAIVE[fam.label] = out
    return _NAIVE[fam.label]


def _reference_naive(fam, h):
    """Each quantity from the symbolic derivation with textbook forms, in mpmath."""
    import mpmath

    out = {}
    for q, (f, exponential) in _naive_functions(fam).items():
        with mpmath.workdps(_dps(h, exponential)):
            vals = f(*[mpmath.mpf(v) for v in h])
            out[q] = np.array([float(v) for v in vals])
    return out


class _Density:
    """Moments of a finite-support family straight from its density, in mpmath (no F kernel).

    ``p(y) = exp(t(y)ᵀh + log b(y) − F)`` with F = log Σ_y exp(t(y)ᵀh + log b(y)) summed here;
    ``s = t − η``; moments ``Σ_y p(y) Π_i ⟨s(y), v_i⟩``.
    """

    def __init__(self, fam, h):
        import mpmath
        import sympy as sp

        self.dps = _dps(h)
        d = fam.definition
        with mpmath.workdps(self.dps):
            if fam.name == "categorical":
                K = fam.dim
                ts = [[mpmath.mpf(int(a == k)) for a in range(K)] for k in range(K)]
                logb = [mpmath.mpf(0)] * K
            else:
                # every support point, scalar or vector (a multinomial's count vectors)
                ys = [tuple(mpmath.mpf(c) for c in (v if isinstance(v, tuple) else (v,)))
                      for v in d.support.values]
                stat = sp.lambdify(list(d.y_symbols), list(d.statistic), modules="mpmath")
                ts = [[mpmath.mpf(t) for t in stat(*y)] for y in ys]
                log_base = sp.lambdify(list(d.y_symbols), d.log_base, modules="mpmath")
                logb = [log_base(*y) for y in ys]  # b(y), exactly
            hs = [mpmath.mpf(v) for v in h]
            expo = [mpmath.fsum(t[a] * hs[a] for a in range(len(hs))) + b
                    for t, b in zip(ts, logb)]
            top = max(expo)
            self.F = top + mpmath.log(mpmath.fsum(mpmath.exp(e - top) for e in expo))
            self.p = [mpmath.exp(e - self.F) for e in expo]
            self.dim = len(hs)
            self.eta = [mpmath.fsum(pk * t[a] for pk, t in zip(self.p, ts))
                        for a in range(self.dim)]
            self.s = [[t[a] - self.eta[a] for a in range(self.dim)] for t in ts]

    def moment(self, vectors):
        """Σ_y p(y) Π_i ⟨s(y), v_i⟩ for float vectors v_i (an mpmath number)."""
        import mpmath

        with mpmath.workdps(self.dps):
            vs = [[mpmath.mpf(float(x)) for x in v] for v in vectors]
            return mpmath.fsum(pk * mpmath.fprod(mpmath.fsum(sk[a] * v[a]
                                                             for a in range(self.dim))
                                                 for v in vs)
                               for pk, sk in zip(self.p, self.s))

    def tensors(self):
        """Every quantity as a flat float array (for small dimensions)."""
        import itertools

        eye = np.eye(self.dim)

        def moments(order):
            return np.array([float(self.moment([eye[i] for i in idx]))
                             for idx in itertools.product(range(self.dim), repeat=order)])

        i2, m3, m4 = moments(2), moments(3), moments(4)
        i = i2.reshape(self.dim, self.dim)
        k4 = (m4.reshape((self.dim,) * 4) - np.einsum("ab,cd->abcd", i, i)
              - np.einsum("ac,bd->abcd", i, i) - np.einsum("ad,bc->abcd", i, i))
        return {"log_partition": np.array([float(self.F)]),
                "eta": np.array([float(v) for v in self.eta]), "fisher": i2, "kappa3": m3,
                "kappa4": k4.reshape(-1), "central_moment4": m4}

    def kappa4(self, u, v, w, z):
        """κ₄[u, v, w, z] = E[Π⟨s, ·⟩] − the three pairings of I, in mpmath."""
        def fisher(a, b):
            return self.moment([a, b])

        return (self.moment([u, v, w, z]) - fisher(u, v) * fisher(w, z)
                - fisher(u, w) * fisher(v, z) - fisher(u, z) * fisher(v, w))


def _scales(ref):
    """Magnitude of the terms making up each quantity (module docstring)."""
    dim = len(ref["eta"])
    i = ref["fisher"].reshape(dim, dim)
    k = ref["central_moment4"].reshape((dim,) * 4)
    third = math.sqrt(max(float(np.trace(i)), 0.0) * max(float(np.einsum("aabb->", k)), 0.0))
    big = {q: float(np.max(np.abs(v))) for q, v in ref.items()}
    big["kappa3"] = max(big["kappa3"], third)
    big["kappa4"] = max(big["kappa4"], big["central_moment4"], float(np.max(np.abs(i))) ** 2)
    return big


def _compare(ctx, where, got, want, scale, worst, q):
    """Finite, and |got − want| <= 1e-12 · scale; the error / scale goes into ``worst``."""
    ctx.true(f"{where} finite", np.all(np.isfinite(got)))
    ctx.close(where, got, want, rtol=1e-12, scale=scale)
    err = float(np.max(np.abs(np.asarray(got, dtype=float) - np.asarray(want, dtype=float))))
    err = err / scale if scale > 0 else (0.0 if err == 0 else math.inf)
    worst[q] = max(worst.get(q, 0.0), err)


def _check_contraction(ctx, fam, hv, density, scale, worst, draws=3):
    """Family.kappa4_contract (the O(K) one-hot route) against κ₄[u, v, w, z] in mpmath."""
    rng = np.random.default_rng(0)
    for _ in range(draws):
        vecs = rng.normal(size=(4, fam.dim))
        want = float(density.kappa4(*vecs))
        got = np.ravel(fam.kappa4_contract(hv, *[v[None] for v in vecs]))
        size = scale * float(np.prod([np.abs(v).sum() for v in vecs]))
        _compare(ctx, f"{fam.label} at h = {[float(v) for v in hv[0]]}: kappa4_contract", got, [want], size,
                 worst, "kappa4_contract")


def _check_by_directions(ctx, fam, hv, density, worst, draws=3):
    """Large dimension (the one-hot route): F, η and I entry by entry; κ₃, κ₄ and K along
    random directions (the float tensor contracted in float64) against mpmath."""
    import itertools

    import mpmath

    dim, label = fam.dim, f"{fam.label} at h = {[float(v) for v in hv[0]]}"
    eye = np.eye(dim)
    i_ref = np.array([float(density.moment([eye[a], eye[b]]))
                      for a, b in itertools.product(range(dim), repeat=2)])
    _compare(ctx, f"{label}: log_partition", np.ravel(fam.log_partition(hv)),
             [float(density.F)], abs(float(density.F)), worst, "log_partition")
    _compare(ctx, f"{label}: eta", fam.mean(hv)[0], [float(v) for v in density.eta],
             float(max(abs(v) for v in density.eta)), worst, "eta")
    _compare(ctx, f"{label}: fisher", fam.fisher(hv)[0].reshape(-1), i_ref,
             float(np.max(np.abs(i_ref))), worst, "fisher")
    rng = np.random.default_rng(1)
    k3, k4, m4 = fam.kappa3(hv)[0], fam.kappa4(hv)[0], fam.central_moment4(hv)[0]
    i_max = float(np.max(np.abs(i_ref)))
    for _ in range(draws):
        u, v, w, z = rng.normal(size=(4, dim))
        size3 = float(np.prod([np.abs(a).sum() for a in (u, v, w)]))
        size4 = size3 * float(np.abs(z).sum())
        m4_ref = float(density.moment([u, v, w, z]))
        with mpmath.workdps(density.dps):
            k4_ref = float(density.kappa4(u, v, w, z))
        scale4 = max(abs(m4_ref), i_max**2 * size4, float(np.max(np.abs(m4))) * size4)
        _compare(ctx, f"{label}: kappa3[u,v,w]", [np.einsum("abc,a,b,c->", k3, u, v, w)],
                 [float(density.moment([u, v, w]))],
                 size3 * math.sqrt(i_max * float(np.max(np.abs(m4)))), worst, "kappa3")
        _compare(ctx, f"{label}: kappa4[u,v,w,z]",
                 [np.einsum("abcd,a,b,c,d->", k4, u, v, w, z)], [k4_ref], scale4, worst,
                 "kappa4")
        _compare(ctx, f"{label}: central_moment4[u,v,w,z]",
                 [np.einsum("abcd,a,b,c,d->", m4, u, v, w, z)], [m4_ref], scale4, worst,
                 "central_moment4")
    _check_contraction(ctx, fam, hv, density,
                       max(float(np.max(np.abs(m4))), i_max**2), worst, draws)


@statement(
    "ext-kernel-stability",
    title="Beyond the paper: kernels at extreme natural parameters",
    claim=r"\text{for every family, } F, \eta, I, \kappa_3, \kappa_4, K \text{ at } |h| \sim "
    r"10^2\text{–}10^3 \text{ are finite and equal to an mpmath reference}",
    hypotheses=[r"h \text{ in the natural domain}", r"\text{true values representable in float64}"],
    method="exact expectation",
)
def check(ctx):
    """Float kernels (NumPy, batched) against the mpmath reference at every point of CASES;
    the categorical family at K = 12 exercises the one-hot route (no symbolic kernels), and
    its O(K) κ₄ contraction is checked against the reference along random directions."""
    import fisher_verify as fv

    cases = list(CASES)
    if ctx.thorough:
        cases.append(("product", {}, ((700.0, -700.0), (-300.0, 300.0))))
    worst = {}
    for name, params, points in cases:
        fam = (fv.product(fv.family("bernoulli"), fv.family("poisson")) if name == "product"
               else _family(name, params))
        for h in points:
            hv = np.array([h], dtype=float)
            density = _Density(fam, h) if fam.definition.support.kind == "finite" \
                else None
            if density is not None and fam.dim > 4:
                _check_by_directions(ctx, fam, hv, density, worst)
                continue
            ref = density.tensors() if density is not None else _reference_naive(fam, h)
            scale = _scales(ref)
            for q in QUANTITIES:
                got = np.asarray(getattr(fam, "mean" if q == "eta" else q)(hv)[0], dtype=float)
                _compare(ctx, f"{fam.label} at h = {list(h)}: {q}", got.reshape(-1), ref[q],
                         scale[q], worst, q)
            if density is not None and name == "categorical":
                _check_contraction(ctx, fam, hv, density, scale["kappa4"], worst)
    ctx.record("largest error / scale per quantity", worst)
    return ctx.conclude(f"{sum(len(c[2]) for c in cases)} extreme points over "
                        f"{len(cases)} families: finite and within 1e-12 of the terms' size")
