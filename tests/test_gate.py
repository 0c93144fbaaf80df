"""The gate: exit codes 0/1/2, JSON and JUnit output (issue 5)."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fisher_verify.cli import main

GOOD = """
from fisher_verify.proofs import statement

@statement("good-1", claim=r"1 + 1 = 2", method="symbolic identity")
def check(ctx):
    ctx.close("sum", 1 + 1, 2)
    return ctx.conclude(symbolic=True)

@statement("good-2", claim=r"x", method="exact expectation")
def check2(ctx):
    return ctx.not_applicable("nothing to check")
"""

ERRATUM = """
from fisher_verify.proofs import statement

@statement("fixed-1", claim=r"\\lVert I_2\\rVert_F = \\sqrt 2", method="exact expectation")
def check(ctx):
    ctx.close("intended", 2 ** 0.5, 2 ** 0.5)
    ctx.erratum("the paper writes 1 for sqrt(2)", lhs=2 ** 0.5, rhs=1.0)
    return ctx.conclude()
"""

BAD = """
from fisher_verify.proofs import statement

@statement("bad-1", claim=r"1 + 1 = 3", method="exact expectation")
def check(ctx):
    ctx.close("sum", 1 + 1, 3)
    return ctx.conclude()

@statement("bad-2", claim=r"x", method="m")
def check2(ctx):
    raise RuntimeError("kaboom")
"""


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    (good / "g.py").write_text(textwrap.dedent(GOOD))
    (bad / "b.py").write_text(textwrap.dedent(BAD))
    return good, bad


def test_exit_0_when_all_hold(folders, capsys):
    good, _ = folders
    assert main(["check", str(good)]) == 0
    out = capsys.readouterr()
    assert "good-1" in out.out and "proved" in out.out and "not applicable" in out.out
    assert "[2/2]" in out.err  # progress counter lines when stderr is not a TTY


def test_exit_1_on_refuted_or_error(folders, tmp_path, capsys):
    good, bad = folders
    js, xml = tmp_path / "run.json", tmp_path / "run.xml"
    assert main(["check", str(good), str(bad), "--json", str(js), "--junit", str(xml)]) == 1
    doc = json.loads(js.read_text())
    verdicts = {s["id"]: s["verdict"] for s in doc["statements"]}
    assert verdicts == {"good-1": "proved", "good-2": "not applicable", "bad-1": "refuted",
                        "bad-2": "error"}
    assert doc["all_hold"] is False and doc["environment"]["packages"]["numpy"]
    suite = ET.parse(xml).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == ("4", "1", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["bad-1"].find("failure") is not None
    assert "kaboom" in cases["bad-2"].find("error").get("message")
    assert cases["good-2"].find("skipped") is not None


def test_only_and_usage_errors(folders, tmp_path, capsys, monkeypatch):
    good, bad = folders
    assert main(["check", str(good), str(bad), "--only", "good-1"]) == 0
    assert main(["check", str(good), "--only", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown statement id(s) nope" in err and "Traceback" not in err
    assert main(["check", str(tmp_path / "missing")]) == 2
    monkeypatch.chdir(tmp_path)  # no ./proofs here
    assert main(["check"]) == 2
    assert "no 'proofs' folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["check", str(good), "--profile", "slow"])
    assert exc.value.code == 2


def test_output_paths_are_checked_before_the_run(folders, tmp_path, capsys):
    """A folder given as --junit/--json, a file given as report --out, or a negative --jobs
    is one line and exit 2 before any proof runs (no progress lines, no traceback)."""
    good, _ = folders
    (tmp_path / "a_file").write_text("")
    for argv, words in (
        (["check", str(good), "--junit", str(tmp_path)], "--junit"),
        (["check", str(good), "--json", str(tmp_path / "no" / "x.json")], "folder does not exist"),
        (["check", str(good), "--jobs", "-1"], "--jobs must be >= 0"),
        (["report", str(good), "--jobs", "-1"], "--jobs must be >= 0"),
        (["report", str(good), "--out", str(tmp_path / "a_file")], "is a file; give a folder"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1 and "[1/" not in err, argv


def test_default_path_is_local_proofs(folders, monkeypatch, tmp_path):
    good, _ = folders
    good.rename(tmp_path / "proofs")
    monkeypatch.chdir(tmp_path)
    assert main(["check", "-q"]) == 0


def test_repository_quick_subset_holds(capsys):
    """A fast slice of the real proofs passes the gate (the whole gate is run by CI)."""
    root = Path(__file__).resolve().parents[1] / "proofs"
    assert main(["check", str(root), "--only", "lemma-5", "remark-4.1", "crlb", "-q"]) == 0


def test_erratum_in_table_json_and_junit(tmp_path, capsys):
    """A documented disagreement with the paper is printed in the table row, and kept in the
    JSON (per statement and in the run's summary) and the JUnit XML (property, system-out)."""
    folder = tmp_path / "e"
    folder.mkdir()
    (folder / "e.py").write_text(textwrap.dedent(ERRATUM))
    js, xml = tmp_path / "run.json", tmp_path / "run.xml"
    assert main(["check", str(folder), "--json", str(js), "--junit", str(xml)]) == 0
    out = capsys.readouterr().out
    assert "ERRATUM" in out and "the paper writes 1 for sqrt(2)" in out
    assert "1 with an erratum" in out
    doc = json.loads(js.read_text())
    (st,) = doc["statements"]
    assert st["verdict"] == "verified" and st["errata"][0]["counterexample"]["rhs"] == 1.0
    assert doc["errata"] == {"fixed-1": ["the paper writes 1 for sqrt(2)"]}
    case = ET.parse(xml).getroot().find("testsuite/testcase")
    assert case is not None and case.find("failure") is None
    prop = case.find("properties/property")
    assert prop is not None and prop.get("name") == "erratum"
    assert prop.get("value") == "the paper writes 1 for sqrt(2)"
    assert "erratum: the paper writes 1" in (case.findtext("system-out") or "")


def test_import_error_names_the_exception_in_the_table(tmp_path, capsys):
    """A proof file that raises at import: the table names the exception type and message
    (in full, on a line of its own), the JSON keeps the traceback; a syntax error names its
    line."""
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "raises.py").write_text(textwrap.dedent("""
        from fisher_verify.proofs import statement
        raise ValueError("the weights file models/w.npz is missing; run make weights first")
        @statement("raises-1", claim="", method="m")
        def check(ctx):
            return ctx.verified()
    """))
    (folder / "syntax.py").write_text(textwrap.dedent("""
        from fisher_verify.proofs import statement
        @statement("syntax-1", claim="", method="m")
        def check(ctx)
            return ctx.verified()
    """))
    js = tmp_path / "run.json"
    assert main(["check", str(folder), "--json", str(js)]) == 1
    out = capsys.readouterr().out
    flat = " ".join(out.split())
    assert "ValueError: the weights file models/w.npz is missing; run make weights first" in flat
    assert "SyntaxError" in flat and "(line 4)" in flat
    doc = {s["id"]: s for s in json.loads(js.read_text())["statements"]}
    assert doc["raises-1"]["verdict"] == "error" and "Traceback" in doc["raises-1"]["error"]
    assert doc["raises-1"]["summary"].startswith("cannot import raises.py: ValueError: the")
    assert doc["syntax-1"]["verdict"] == "error"


def test_exception_in_a_proof_is_named_in_the_table(tmp_path, capsys):
    """An exception raised while a proof runs: type and full message in the table."""
    folder = tmp_path / "runtime"
    folder.mkdir()
    (folder / "r.py").write_text(textwrap.dedent("""
        from fisher_verify.proofs import statement
        @statement("runtime-1", claim="", method="m")
        def check(ctx):
            raise KeyError("no family called 'bernouli' (did you mean 'bernoulli'?) in the table")
    """))
    assert main(["check", str(folder)]) == 1
    flat = " ".join(capsys.readouterr().out.split())
    assert "KeyError: \"no family called 'bernouli' (did you mean 'bernoulli'?) in the table\"" \
        in flat
