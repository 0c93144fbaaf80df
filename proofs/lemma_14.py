"""lemma-14: Frobenius norm of the per-layer Jacobian, and its weight-norm bound.

**Erratum (the paper's intent wins, STATEMENTS.md).** Read literally, the bound's product
``Π_{i=l+1}^{L-1} ‖W_i⁻‖_F`` is empty (= 1) at the last layer ``l = L−1``. There
``B_L D_{L−1} = I_{n_L}`` (h_L is linear in W_{L−1}), so ``‖∂h_L/∂W_{L−1}‖_F = √n_L ‖h̄_{L−1}‖₂``
and the literal bound ``‖h̄_{L−1}‖₂`` fails whenever ``n_L > 1``. The proof behind the lemma
(submultiplicativity, ``‖D_i‖₂ ≤ 1``) bounds ``‖B_{l+1} D_l‖_F`` by ``‖B_L‖_F Π ‖W_i⁻‖_F`` with
``‖B_L‖_F = ‖I_{n_L}‖_F = √n_L`` left over only when the product is empty; for ``l < L−1`` the
identity is absorbed (``‖W_{L−1}⁻ D‖_F ≤ ‖W_{L−1}⁻‖_F``) and the literal bound holds as
stated. This file checks the equality exactly and the bound in that intended form
(``c_{L−1} = √n_L``, ``c_l = 1`` otherwise), and records the literal form's counterexample as
an erratum. :func:`fisher_verify.bounds` uses the same reading (``details['paper_rhs']`` keeps
the literal one).
"""

import math

import numpy as np

from fisher_verify._src.proofs.support import random_networks
from fisher_verify.proofs import statement

LITERAL = (r"\Big\lVert\frac{\partial h_L}{\partial W_l}\Big\rVert_F \le "
           r"\prod_{i=l+1}^{L-1}\lVert W_i^-\rVert_F\,\lVert\bar h_l\rVert_2"
           r"\quad\text{(empty product = 1 at } l = L-1\text{)}")


@statement(
    "lemma-14",
    title="Lemma 14 (last layer corrected: erratum)",
    claim=r"\Big\lVert\frac{\partial h_L}{\partial W_l}\Big\rVert_F = \lVert B_{l+1} D_l\rVert_F"
    r"\lVert\bar h_l\rVert_2 \le c_l \prod_{i=l+1}^{L-1}\lVert W_i^-\rVert_F\,"
    r"\lVert\bar h_l\rVert_2,\quad c_l = 1 \text{ for } l < L-1,\ "
    r"c_{L-1} = \lVert B_L\rVert_F = \sqrt{n_L}",
    hypotheses=[r"|\sigma'| \le 1"],
    method="property over random networks",
)
def check(ctx):
    """Per layer, the autodiff Jacobian block's norm vs both sides (tanh, sigmoid, softplus);
    the last layer's norm is exactly √n_L ‖h̄_{L−1}‖ (the corrected constant is sharp); the
    literal form holds exactly when l < L−1 or n_L = 1; the library's bounds() agrees."""
    import fisher_verify as fv
    from fisher_verify._src.fisher.spectral import sup_abs_derivative

    literal_failures = []
    for act in ctx.pick(("tanh", "sigmoid"), ("tanh", "sigmoid", "softplus")):
        for k, (net, x) in enumerate(random_networks(ctx, activation=act, scale=2.0)):
            ctx.leq(f"{act}: sup|sigma'| <= 1 (hypothesis)", sup_abs_derivative(net), 1.0)
            q = net.lemma13(x)
            J = net.jacobian(x, method="autodiff")
            off = net.offsets
            last = net.depth - 1
            n_out = net.widths[-1]
            lib = fv.bounds(net, x).lemma14
            where = f"{act} net {k} (widths {tuple(net.widths)})"
            for l in range(net.depth):
                lhs = np.linalg.norm(J[:, off[l]:off[l + 1]])
                hb = np.linalg.norm(q.hbar[l][0])
                mid = np.linalg.norm(q.B[l + 1][0] * q.D[l][0][None, :]) * hb
                literal = np.prod([np.linalg.norm(W[:, :-1]) for W in net.weights[l + 1:]]) * hb
                c = math.sqrt(n_out) if l == last else 1.0
                ctx.close(f"{where} layer {l}: equality", lhs, mid, rtol=1e-10)
                ctx.leq(f"{where} layer {l}: bound (c_l = {c:.4g})", lhs, c * literal,
                        activation=act, layer=l)
                if l == last:
                    ctx.close(f"{where} last layer: = sqrt(n_L) ||hbar||", lhs,
                              math.sqrt(n_out) * hb, rtol=1e-10)
                literal_holds = bool(lhs <= literal * (1 + 1e-10))
                ctx.true(f"{where} layer {l}: literal form holds iff l < L-1 or n_L = 1",
                         literal_holds == (l < last or n_out == 1))
                ctx.close(f"{where} layer {l}: bounds() rhs", lib[l].rhs, c * literal,
                          rtol=1e-10)
                ctx.true(f"{where} layer {l}: bounds() paper_form_holds",
                         lib[l].details["paper_form_holds"] == literal_holds)
                if not literal_holds:
                    literal_failures.append({"network": where, "layer": l, "n_L": n_out,
                                             "lhs": lhs, "literal_rhs": literal,
                                             "ratio": lhs / literal})
    ctx.record("literal form: violations (all at l = L-1, n_L > 1)", len(literal_failures))
    if literal_failures:
        first = literal_failures[0]
        ctx.erratum(
            "At the last layer l = L-1 the empty product must be read as ||B_L||_F = sqrt(n_L): "
            "dh_L/dW_{L-1} = I_{n_L} (x) hbar_{L-1} has Frobenius norm sqrt(n_L)||hbar_{L-1}||, so "
            "the literal bound ||hbar_{L-1}|| fails for every n_L > 1 (ratio sqrt(n_L)); for "
            "l < L-1, or n_L = 1, the literal bound holds as stated.",
            literal=LITERAL,
            **first,
            violations=len(literal_failures),
        )
    return ctx.conclude(
        "equality and the bound with c_{L-1} = sqrt(n_L) hold (sharp at the last layer); "
        f"the literal last-layer bound fails on {len(literal_failures)} network(s) with n_L > 1"
    )
