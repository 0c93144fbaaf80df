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
                "statistic": [str(t) for t in d.statistic] if fam.dim <= 2 else "one-hot",
                "support": d.support.describe(),
                "domain": d.domain_text,
                "expectation_route": d.expectation_route,
                "description": d.description,
            }
        )
    if args.json:
        print(jsontext.dumps(rows, indent=2))
        return 0
    print(f"{'family':<25} {'parameters':<14} {'d':>3}  {'support':<14} domain")
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["parameters"].items()) or "-"
        d_text = str(r["dim"]) if "K" not in r["parameters"] else "K"
        print(f"{r['name']:<25} {params:<14} {d_text:>3}  {r['support']:<14} {r['domain']}")
    print("\nproduct: independent product of any of the above, fisher_verify.product(f1, f2, ...)")
    return 0
