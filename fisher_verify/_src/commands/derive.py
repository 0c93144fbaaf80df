"""``fisher-verify derive NAME``: print a family's derivation and the verdict of each identity."""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np
import sympy as sp

from .. import jsontext
from ..errors import FisherVerifyError
from ..families.family import CategoricalFamily, Family
from ..families.registry import family
from ..identities import IdentityResult, prove_family
from ..symbolic.safe import stable_function_names
from .common import add_family_arguments, natural_point, parse_params

QUANTITIES = (
    ("log_partition", "F(h)", "log-partition"),
    ("eta", r"\eta = \partial F", "expectation parameters (lemma-2)"),
    ("fisher", r"I = \partial^2 F", "Fisher information of h (lemma-2)"),
    ("kappa3", r"\kappa_3 = \partial^3 F", "third cumulant"),
    ("kappa4", r"\kappa_4 = \partial^4 F", "fourth cumulant"),
    ("central_moment4", "K", "fourth central moment (lemma-5)"),
)
# LaTeX name of one entry: the index goes into the one subscript (κ₄'s order with it, since
# \kappa_4_{0000} is a double subscript that LaTeX and KaTeX reject)
ENTRY_NAMES = {
    "log_partition": "F",
    "eta": r"\eta_{{{}}}",
    "fisher": "I_{{{}}}",
    "kappa3": r"\kappa_{{3,{}}}",
    "kappa4": r"\kappa_{{4,{}}}",
    "central_moment4": "K_{{{}}}",
}


def entry_name(quantity: str, index: tuple[int, ...]) -> str:
    r"""The LaTeX name of one entry, e.g. ``\kappa_{4,0012}``; ``F(h)`` for the log-partition."""
    if quantity == "log_partition":
        return "F(h)"
    return ENTRY_NAMES[quantity].format("".join(map(str, index)))
MAX_ENTRIES = 12


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``derive`` command."""
    p = sub.add_parser("derive", help="print a family's derivation, identities and values")
    p.add_argument("name", help="family name (see `fisher-verify families`)")
    add_family_arguments(p)
    p.add_argument(
        "--at", metavar="H", help="natural parameter for numeric values, e.g. 0.5 or 1,-0.5"
    )
    p.add_argument("--format", choices=("markdown", "latex", "json"), default="markdown",
                   help="json is strict JSON: a value that is not finite (an overflow at --at) "
                   'is written as the string "inf", "-inf" or "nan"')
    p.add_argument("--no-proofs", action="store_true", help="skip proving the identities")
    p.set_defaults(func=run)


def _entries(fam: Family, quantity: str) -> list[tuple[tuple[int, ...], sp.Expr]]:
    if quantity == "log_partition":
        return [((), fam.derivation.log_partition)]
    tensor = getattr(fam.derivation, quantity)
    return [(idx, tensor[idx]) for idx in tensor.unique_indices() if tensor[idx] != 0]


def _numeric(fam: Family, quantity: str, h: list[float]) -> Any:
    value = getattr(fam, "mean" if quantity == "eta" else quantity)(np.asarray(h, dtype=float))
    return np.asarray(value).tolist()


def run(args: argparse.Namespace) -> int:
    """Print the derivation; exit 1 when an identity fails."""
    params = parse_params(args.param)
    limit = CategoricalFamily.SYMBOLIC_LIMIT
    k = params.get("K")
    if args.name == "categorical" and isinstance(k, int) and k > limit:
        # refused before the family is built: that alone takes seconds at K = 10⁵
        raise FisherVerifyError(
            f"derive prints the dense symbolic tensors (C(K+3, 4) = {math.comb(k + 3, 4)} κ₄ "
            f"entries at K={k}), built for K <= {limit} only; the identities hold for every K "
            "(proved once through categorical(5)), and fisher_verify.family('categorical', "
            f"K={k}) gives the numbers"
        )
    fam = family(args.name, **params)
    point = natural_point(fam, args.at)
    proofs: list[IdentityResult] = [] if args.no_proofs else prove_family(fam)
    if args.format == "json":
        print(jsontext.dumps(_as_json(fam, proofs, point), indent=2))
    else:
        print(_as_text(fam, proofs, point, latex_only=args.format == "latex"))
    return 0 if all(r.holds for r in proofs) else 1


def _as_json(
    fam: Family, proofs: list[IdentityResult], point: list[float] | None
) -> dict[str, Any]:
    d = fam.definition
    out: dict[str, Any] = {
        "family": fam.label,
        "statistic": [sp.sstr(t) for t in d.statistic],
        "log_base": sp.sstr(d.log_base),
        "support": d.support.describe(),
        "domain": d.domain_text,
        "expectation_route": d.expectation_route,
        "derivation": {
            q: {",".join(map(str, idx)) or "-": sp.sstr(e) for idx, e in _entries(fam, q)}
            for q, _, _ in QUANTITIES
        },
        "identities": [r.to_dict() for r in proofs],
    }
    if point is not None:
        out["at"] = point
        out["values"] = {q: _numeric(fam, q, point) for q, _, _ in QUANTITIES}
    return out


def _as_text(
    fam: Family, proofs: list[IdentityResult], point: list[float] | None, latex_only: bool
) -> str:
    d = fam.definition
    lines: list[str] = []
    if not latex_only:
        lines += [
            f"# Derivation: {fam.label}",
            "",
            f"- sufficient statistic $t(y) = ({', '.join(sp.latex(t) for t in d.statistic)})$",
            f"- base measure $\\log b(y) = {sp.latex(d.log_base)}$ on {d.support.describe()}",
            f"- natural domain: {d.domain_text}",
            f"- exact expectations: {d.expectation_route}",
            "- stable functions: " + ", ".join(stable_function_names())
            + " (their derivatives are again stable functions)",
            "",
        ]
    for q, sym, words in QUANTITIES:
        entries = _entries(fam, q)
        if not latex_only:
            lines.append(f"## ${sym}$: {words}")
            lines.append("")
        shown = entries[:MAX_ENTRIES]
        for idx, expr in shown:
            name = entry_name(q, idx)
            lines.append(
                f"$${name} = {sp.latex(expr)}$$" if not latex_only else f"{name} = {sp.latex(expr)}"
            )
        if len(entries) > MAX_ENTRIES:
            lines.append(
                f"… {len(entries) - MAX_ENTRIES} more nonzero entries (symmetric; `--format json` lists all)"
            )
        if not entries:
            lines.append("all entries are 0")
        if point is not None and not latex_only:
            lines.append("")
            lines.append(
                f"value at h = {point}: `{np.array2string(np.asarray(_numeric(fam, q, point)), precision=10)}`"
            )
        lines.append("")
    if proofs:
        if not latex_only:
            lines += [
                "## Identities",
                "",
                "| statement | claim | verdict | method | detail |",
                "|---|---|---|---|---|",
            ]
        for r in proofs:
            verdict = (
                "proved"
                if r.holds and r.method == "symbolic"
                else ("verified" if r.holds else "FAILED")
            )
            if latex_only:
                lines.append(f"% {r.statement_id}: {verdict} ({r.method}) {r.claim}")
            else:
                lines.append(
                    f"| {r.statement_id} | ${r.claim}$ | {verdict} | {r.method} | {r.detail} |"
                )
    return "\n".join(lines)
