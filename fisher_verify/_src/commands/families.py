"""``fisher-verify families``: list the catalog."""

from __future__ import annotations

import argparse
from typing import Any

from .. import jsontext
from ..families.catalog import PARAMETERS
from ..families.registry import family, family_names


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``families`` command."""
    p = sub.add_parser("families", help="list the exponential families of the catalog")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one line per family: name, parameters (defaults), d, support, domain."""
    rows: list[dict[str, Any]] = []
    for name in family_names():
        fam = family(name)
        d = fam.definition
        rows.append(
            {
                "name": name,
                "parameters": PARAMETERS[name],
                "dim": fam.dim,
                # the categorical's statistic is a lazy one-hot sequence, not a list of terms
                "statistic": ("one-hot" if type(d.statistic).__name__ == "PerClass"
                              else [str(t) for t in d.statistic]),
                "support": d.support.describe(),
                "domain": d.domain_text,
                "expectation_route": d.expectation_route,
                "description": d.description,
            }
        )
    if args.json:
        print(jsontext.dumps(rows, indent=2))
        return 0
    lines = []
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["parameters"].items()) or "-"
        d_text = str(r["dim"]) if "K" not in r["parameters"] else "K"
        lines.append((r["name"], params, d_text, r["support"], r["domain"]))
    # columns as wide as their longest entry, so a long name or support keeps the table aligned
    w = [max(len(x[i]) for x in [("family", "parameters", "d", "support", "")] + lines)
         for i in range(4)]
    print(f"{'family':<{w[0]}}  {'parameters':<{w[1]}}  {'d':>{w[2]}}  {'support':<{w[3]}}  domain")
    for name, params, d_text, support, domain in lines:
        print(f"{name:<{w[0]}}  {params:<{w[1]}}  {d_text:>{w[2]}}  {support:<{w[3]}}  {domain}")
    print("\nproduct: independent product of any of the above, fisher_verify.product(f1, f2, ...)")
    return 0
