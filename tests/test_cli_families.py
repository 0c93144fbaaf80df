"""`fisher-verify families`: the table stays aligned whatever the registry holds, and the JSON
names each family's sufficient statistic (the one-hot categorical aside)."""

from __future__ import annotations

import json
import subprocess
import sys

import fisher_verify as fv


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "fisher_verify.cli", "families", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_table_is_aligned_and_lists_every_family() -> None:
    lines = [line for line in _run().splitlines() if line.strip()]
    header, rows = lines[0], lines[1:1 + len(fv.family_names())]
    start = header.index("domain")
    for name, row in zip(fv.family_names(), rows, strict=True):
        assert row.startswith(name + " "), row
        # two spaces before the domain column, then its first character, on every row
        assert row[start - 2:start] == "  " and row[start] != " ", row


def test_the_json_statistic_is_the_definition_s() -> None:
    rows = {r["name"]: r for r in json.loads(_run("--json"))}
    assert rows["categorical"]["statistic"] == "one-hot"
    assert rows["dirichlet"]["statistic"] == ["-log(y0)", "-log(y1)", "-log(y2)"]
    assert rows["von_mises"]["statistic"] == ["cos(y)", "sin(y)"]
