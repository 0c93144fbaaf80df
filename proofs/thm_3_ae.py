"""thm-3-ae: a ReLU network is smooth in θ at an input away from its kinks, and thm-3 holds there."""

import numpy as np

from fisher_verify._src.proofs.support import definition_route, exact_covariance, expect, random_networks
from fisher_verify.proofs import statement


def _hessian_by_differences(net, x, step):
    """∂²h_L/∂θ∂θᵀ by central differences of the lemma-13 Jacobian in θ: an independent route
    (first derivatives only). For depth 2 the Jacobian is linear in θ near θ, so central
    differences are exact up to rounding; the step stays far below the smallest |pre-activation|
    over the input's layers, so no difference crosses a kink."""
    theta = net.theta
    cols = []
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = step
        Jp = net.with_theta(theta + e).jacobian(x)
        Jm = net.with_theta(theta - e).jacobian(x)
        cols.append((Jp - Jm) / (2 * step))
    return np.stack(cols, axis=-1)  # (n_L, P, P)


def _nearest_kink_distance(net, x):
    return min(float(np.min(np.abs(a))) for a in net.lemma13(x).pre[:-1])


@statement(
    "thm-3-ae",
    title="Theorem 3 for ReLU networks at inputs away from kinks (beyond the paper)",
    claim=r"a_{l,r}(x) \neq 0\ \forall l<L-1, r \;\Rightarrow\; I(\theta|x) = "
    r"\mathbb{E}_p\!\left[-\frac{\partial^2 \ell}{\partial\theta\partial\theta^\top}\right]"
    r"\text{, and thm-6, thm-8, thm-10, thm-11 apply at } x",
    hypotheses=[r"\sigma \text{ piecewise linear (ReLU)}",
                r"\text{no pre-activation within rounding of a kink at } x"],
    method="exact expectation and finite differences",
)
def check(ctx):
    """On random ReLU networks (depth 2 and 3, every quick family) at random inputs:
    1. the library finds no kink (every |pre-activation| exceeds its rounding bound);
    2. the output Hessians (lemma-13's second-order extension, σ'' = 0) equal central
       differences of the Jacobian; the within-layer blocks vanish and the cross-layer ones
       do not;
    3. thm-3: E[−∂²ℓ] = E[∂ℓ∂ℓᵀ] = I(θ) (eq-6), all by autodiff at the exact-expectation nodes;
    4. thm-6: the closed-form Cov(Î₂) equals the exact covariance of −∂²ℓ from the definition;
       thm-8's bound holds; thm-10/thm-11's quantities are computed;
    5. at an input moved onto a kink, every Î₂ quantity is refused naming the input, the layer
       and the unit, and the one-sided Jacobians there differ (so no Hessian exists)."""
    import fisher_verify as fv
    from fisher_verify.errors import UnsupportedError

    n = 3
    widths = ctx.pick(((2, 3, 2), (2, 3, 3, 2)), ((2, 3, 2), (2, 3, 3, 2), (3, 4, 3, 1)))
    nets = random_networks(ctx, activation="relu", widths=widths)
    cross_seen = 0.0
    for k, (net, x) in enumerate(nets):
        label = f"net {k} {net.widths} {net.family.label}"
        ctx.true(f"{label}: no pre-activation within rounding of a kink", not net.kinks(x))
        H = net.output_hessians(x)
        off = net.offsets
        within = max(float(np.max(np.abs(H[:, off[l]:off[l + 1], off[l]:off[l + 1]])))
                     for l in range(net.depth))
        ctx.close(f"{label}: within-layer Hessian blocks vanish", within, 0.0,
                  scale=float(np.max(np.abs(H))) + 1.0, net=k)
        cross_seen = max(cross_seen, float(np.max(np.abs(H))))
        if net.depth == 2:
            step = 1e-3 * _nearest_kink_distance(net, x)
            ctx.close(f"{label}: Hessian = central differences of J", H,
                      _hessian_by_differences(net, x, step), rtol=1e-6, net=k)
        route = definition_route(net, x)
        fisher = fv.exact_fisher(net, x)
        ctx.close(f"{label}: E[-Hessian of log-lik] = I(theta) (thm-3)",
                  expect(route, route["neg_hessian"]), fisher, net=k)
        ctx.close(f"{label}: E[score score^T] = I(theta)",
                  expect(route, np.einsum("si,sj->sij", route["score"], route["score"])), fisher,
                  net=k)
        # the exact route centres each node's −∂²ℓ before multiplying: its rounding is of order
        # ε · max|g| · max|g − ḡ|, not relative to the covariance, which is 0 where every output
        # Hessian vanishes at x (a dead layer; noise of 1e-32 then fails a relative test on some
        # CPUs): scale to the product of the sizes that are multiplied after the cancellation
        g = route["neg_hessian"]
        spread = float(np.max(np.abs(g - np.tensordot(route["w"], g, axes=(0, 0)))))
        ctx.close(f"{label}: Cov(I2) closed form = exact (thm-6)",
                  fv.covariance(net, x, which="I2", n=n),
                  exact_covariance(route, g) / n, scale=float(np.max(np.abs(g))) * spread / n,
                  net=k)
        b = fv.bounds(net, x, n=n, psd_draws=ctx.pick(20, 200), rng=ctx.rng)
        ctx.true(f"{label}: thm-8 bound holds and thm-10 is computed",
                 b.thm8.holds is True and b.thm10 is not None, repr(b))
    ctx.true("some cross-layer Hessian block is non-zero (Î₂ ≠ I(θ) for ReLU at depth ≥ 2)",
             cross_seen > 1e-3, f"max |∂²h_L| = {cross_seen:.3g}")
    ctx.record("networks", len(nets))

    # 5. onto a kink: refused, naming where; the one-sided Jacobians differ there
    net, x = nets[0]
    weights = [W.copy() for W in net.weights]
    weights[0][0, -1] = -float(weights[0][0, :-1] @ x)
    kinked = fv.Network(weights, "relu", net.family)
    for name, call in (("Var(I2) (thm-6)", lambda: fv.variance(kinked, x, which="I2")),
                       ("bounds (thm-8, thm-10)", lambda: fv.bounds(kinked, x, n=2)),
                       ("analyze", lambda: fv.analyze(kinked, x))):
        try:
            call()
            ctx.true(f"{name} refused at a kink", False)
        except UnsupportedError as exc:
            ctx.true(f"{name} refused at a kink, naming input, layer and unit",
                     "input 0: pre-activation 0 of layer 1" in str(exc), str(exc))
    eps = 1e-7
    up, down = [W.copy() for W in weights], [W.copy() for W in weights]
    up[0][0, -1] += eps
    down[0][0, -1] -= eps
    gap = float(np.max(np.abs(fv.Network(up, "relu", net.family).jacobian(x)
                              - fv.Network(down, "relu", net.family).jacobian(x))))
    ctx.true("at the kink the one-sided Jacobians differ (no second derivative there)",
             gap > 1e-3, f"max gap {gap:.3g}")
    return ctx.conclude()
