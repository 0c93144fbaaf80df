"""The proofs engine: the statement API, discovery, verdicts, seeding (issue 5)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from fisher_verify._src.proofs import discover, run_all, run_statement, select
from fisher_verify._src.proofs.api import seed_for
from fisher_verify.errors import FisherVerifyError
from fisher_verify.proofs import Context, statement


def _write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_decorator_builds_a_statement():
    @statement("x-1", claim=r"a = a", method="symbolic identity", hypotheses=["h"])
    def check(ctx):
        ctx.close("a", 1.0, 1.0)
        return ctx.conclude(symbolic=True)

    assert check.id == "x-1" and check.hypotheses == ("h",)
    rec = run_statement(check)
    assert rec.verdict == "proved" and rec.holds


def test_failed_check_is_refuted_with_counterexample():
    @statement("x-2", claim="", method="exact expectation")
    def check(ctx):
        ctx.close("bad", [1.0, 2.0], [1.0, 2.5], where="h=0")
        return ctx.verified("all good")

    rec = run_statement(check)
    assert rec.verdict == "refuted"
    assert rec.counterexample == {"check": "bad", "actual": 2.0, "expected": 2.5, "where": "h=0"}


def test_exception_is_an_error_verdict():
    @statement("x-3", claim="", method="m")
    def check(ctx):
        raise ValueError("boom")

    rec = run_statement(check)
    assert rec.verdict == "error" and "boom" in rec.summary and "Traceback" in rec.error


def test_none_return_concludes_and_not_applicable_holds():
    @statement("x-4", claim="", method="m")
    def check(ctx):
        ctx.leq("bound", 1.0, 2.0)

    @statement("x-5", claim="", method="m")
    def check5(ctx):
        return ctx.not_applicable("no such network")

    assert run_statement(check).verdict == "verified"
    rec = run_statement(check5)
    assert rec.verdict == "not applicable" and rec.holds and rec.reason == "no such network"


def test_seed_is_per_statement_and_reproducible():
    assert seed_for(0, "a") == seed_for(0, "a") != seed_for(0, "b") != seed_for(1, "b")
    a = Context("a", seed=3).rng.normal(size=3)
    b = Context("a", seed=3).rng.normal(size=3)
    assert np.array_equal(a, b)
    assert Context("a", profile="thorough").pick(1, 2) == 2


def test_discover_select_and_errors(tmp_path):
    _write(tmp_path, "one.py", """
        from fisher_verify.proofs import statement
        @statement("s-1", claim="", method="m")
        def check(ctx):
            return ctx.verified("ok", value=1)
    """)
    _write(tmp_path, "broken.py", """
        from fisher_verify.proofs import statement
        @statement("s-2", claim="", method="m")
        def check(ctx)   # syntax error
    """)
    _write(tmp_path, "_helper.py", "raise RuntimeError('never imported')\n")
    entries = discover([tmp_path])
    assert sorted(e.id for e in entries) == ["s-1", "s-2"]
    records = run_all(entries)
    verdicts = {r.id: r.verdict for r in records}
    assert verdicts == {"s-1": "verified", "s-2": "error"}
    assert [e.id for e in select(entries, ["s-1"])] == ["s-1"]
    with pytest.raises(FisherVerifyError, match="unknown statement"):
        select(entries, ["nope"])
    with pytest.raises(FisherVerifyError, match="does not exist"):
        discover([tmp_path / "missing"])


def test_duplicate_ids_are_refused(tmp_path):
    for name in ("a.py", "b.py"):
        _write(tmp_path, name, """
            from fisher_verify.proofs import statement
            @statement("dup", claim="", method="m")
            def check(ctx):
                return ctx.verified()
        """)
    with pytest.raises(FisherVerifyError, match="defined twice"):
        discover([tmp_path])


def test_parallel_run_matches_serial(tmp_path):
    _write(tmp_path, "r.py", """
        from fisher_verify.proofs import statement
        @statement("r-1", claim="", method="m")
        def check(ctx):
            return ctx.verified(draw=float(ctx.rng.normal()))
        @statement("r-2", claim="", method="m")
        def check2(ctx):
            return ctx.verified(draw=float(ctx.rng.normal()))
    """)
    entries = discover([tmp_path])
    serial = run_all(entries, seed=5)
    parallel = run_all(entries, seed=5, jobs=2)
    assert [r.evidence for r in serial] == [r.evidence for r in parallel]


#: The follow-ups' statements of paper/STATEMENTS.md ("Beyond the paper"), proved where built.
FOLLOW_UP_IDS = {
    "thm-3-ae", "d24-var", "d24-bounds", "d24-last-layer", "d24-groups", "d24-pwl", "d24-xy",
    "d24-emp", "sun26-spectrum",
}


def test_repository_declares_every_statement_id():
    """Every id of the paper in paper/STATEMENTS.md has exactly one proof file in proofs/; the
    only other ids are the follow-ups' statements of that file and the statements beyond the
    paper (``ext-``: what the README promises besides it)."""
    root = Path(__file__).resolve().parents[1]
    ids = {
        "prop-1", "lemma-2", "eq-4", "eq-5", "thm-3", "remark-3.1", "eq-6", "eq-7", "eq-8",
        "crlb", "cov-n", "thm-4", "remark-4.1", "lemma-5", "remark-5.1", "thm-6", "remark-6.1",
        "thm-7", "thm-8", "lemma-9", "remark-9.2", "table-1", "fig-1", "thm-10", "thm-11",
        "lemma-12", "lemma-13", "eq-11", "lemma-14", "lemma-15", "delta-i",
    }
    found = [e.id for e in discover([root / "proofs"])]
    assert len(found) == len(set(found))
    extra = set(found) - ids
    assert {"ext-large-path", "ext-kernel-stability", "thm-3-ae", "ext-standard-errors",
            "ext-analyze-choice", "ext-gate-calibration", "ext-models-engine",
            "ext-sharded"} <= extra
    # the gate's other kinds
    assert {"ext-gnb", "ext-hutchinson", "ext-subsampled", "ext-kfac", "ext-kfac-sharing",
            "ext-one-backward"} <= extra
    assert all(i.startswith("ext-") or i in FOLLOW_UP_IDS for i in extra), extra
    assert FOLLOW_UP_IDS <= extra  # every follow-up of STATEMENTS.md has its proof
    assert ids <= set(found)


def test_erratum_is_kept_without_changing_the_verdict():
    """ctx.erratum records a disagreement with the paper's literal form; the verdict is that
    of the checks of the intended form."""

    @statement("x-6", claim=r"\lVert I_n\rVert_F = \sqrt n", method="property over random networks")
    def check(ctx):
        ctx.close("intended", np.linalg.norm(np.eye(2)), np.sqrt(2))
        ctx.erratum("the literal form says 1", literal=r"\lVert I_n\rVert_F \le 1", n=2,
                    lhs=np.sqrt(2), rhs=1.0)
        return ctx.conclude()

    rec = run_statement(check)
    assert rec.verdict == "verified" and rec.holds
    assert rec.errata == [{"text": "the literal form says 1", "literal": r"\lVert I_n\rVert_F \le 1",
                           "counterexample": {"n": 2, "lhs": np.sqrt(2), "rhs": 1.0}}]
    assert rec.as_dict()["errata"][0]["text"] == "the literal form says 1"
    with pytest.raises(ValueError, match="needs a text"):
        Context("y").erratum("  ")


def test_lemma14_verifies_the_intended_form_with_an_erratum():
    """lemma-14: the corrected last-layer constant sqrt(n_L) verifies; the literal form's
    counterexample is an erratum (repository proof)."""
    root = Path(__file__).resolve().parents[1]
    rec = run_all(select(discover([root / "proofs"]), ["lemma-14"]))[0]
    assert rec.verdict == "verified", rec.summary
    (err,) = rec.errata
    assert "sqrt(n_L)" in err["text"]
    ce = err["counterexample"]
    assert ce["n_L"] > 1 and ce["lhs"] > ce["literal_rhs"]
    assert ce["ratio"] == pytest.approx(np.sqrt(ce["n_L"]), rel=1e-10)


def test_close_tolerance_scales_with_the_quantities():
    """ctx.close/leq have no fixed absolute floor: quantities of size 1e-20 that differ by
    10% are not close, those that differ by rounding are; an expected 0 needs the scale of
    the terms that cancel."""
    ctx = Context("tol")
    assert not ctx.close("tiny, 10% off", 1.1e-20, 1.0e-20)
    assert ctx.close("tiny, rounding", 1.0e-20 * (1 + 1e-13), 1.0e-20)
    assert not ctx.close("zero without a scale", 1e-30, 0.0)
    assert ctx.close("zero with the scale of the cancelling terms", 1e-17, 0.0, scale=0.25)
    assert not ctx.close("zero, scale too small", 1e-9, 0.0, scale=0.25)
    assert ctx.close("norm-wise: small entries judged by the largest", [1.0, 1e-17],
                     [1.0, 0.0])
    assert not ctx.leq("tiny bound violated by 10%", 1.1e-20, 1.0e-20)
    assert ctx.leq("tiny bound up to rounding", 1.0e-20 * (1 + 1e-12), 1.0e-20)
    assert not ctx.close("nan is never close", [np.nan], [1.0])
    assert [c.passed for c in ctx.checks] == [False, True, False, True, False, True, False,
                                              True, False]
    assert ctx.checks[0].observed == pytest.approx(0.1)
