"""Time the gate: ``fisher-verify check --profile quick`` over the repository's proofs/.

Budget (issue 5): under 60 s on 2 cores. Run from the repository root:

    python benchmarks/bench_check.py [--jobs N] [--profile quick|thorough]

Prints the wall time, the slowest statements, and whether the budget held (exit 1 if not).
No test asserts on this timing; CI may run it as an informational step.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

BUDGET_S = 60.0


def main() -> int:
    """Run the gate once and report its timing."""
    from fisher_verify._src.proofs import discover, run_all

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--profile", default="quick", choices=("quick", "thorough"))
    p.add_argument("--proofs", default=str(Path(__file__).resolve().parents[1] / "proofs"))
    args = p.parse_args()
    start = time.perf_counter()
    entries = discover([args.proofs])
    records = run_all(entries, profile=args.profile, jobs=args.jobs)
    wall = time.perf_counter() - start
    print(f"{len(records)} statements, profile {args.profile}, jobs {args.jobs}: "
          f"wall {wall:.1f} s (budget {BUDGET_S:.0f} s)")
    for r in sorted(records, key=lambda r: -r.seconds)[:8]:
        print(f"  {r.id:<12} {r.seconds:7.2f} s  {r.verdict}")
    ok = wall < BUDGET_S or args.profile != "quick"
    print("within budget" if ok else "OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
