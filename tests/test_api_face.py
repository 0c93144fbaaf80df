"""The public face is exactly what docs/api.md documents: one name per question.

Every name that ``fisher_verify`` exports is in the table of docs/api.md and every name there
is exported; every ``fv.<name>`` and ``from fisher_verify import <name>`` in the README and
docs/ exists; the docs import only the modules docs/api.md calls public; and no two exported
names answer the same question (a "twin": the same words once the input type or shape is
taken out of the name, as ``variance``/``model_variance_diagonal`` were).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import fisher_verify

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api.md"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: the modules users may import (docs/api.md, "What is public")
PUBLIC_MODULES = {"fisher_verify", "fisher_verify.errors", "fisher_verify.proofs",
                  "fisher_verify.cli", "fisher_verify.testing.pytest_plugin"}

#: words that name the kind of input or the shape of the answer, not the question
_QUALIFIERS = {"model", "torch", "network", "net", "module", "diagonal", "full", "exact", "fisher",
               "estimator", "estimators"}


def exported() -> set[str]:
    return {n for n in fisher_verify.__all__ if n != "__version__"}


def documented() -> set[str]:
    """The names in the first column of docs/api.md's table of names."""
    text = API.read_text(encoding="utf-8")
    table = text.split("<!-- face:", 1)[1].split("\n## ", 1)[0]
    return {m.group(1) for m in re.finditer(r"^\| `fv\.(\w+)", table, re.M)}


def question(name: str) -> tuple[str, ...]:
    """A name with its input-type and shape qualifiers taken out."""
    return tuple(w for w in name.lower().split("_") if w not in _QUALIFIERS)


def twins(names: set[str]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, ...], str] = {}
    out = []
    for name in sorted(names):
        key = question(name)
        if key in seen:
            out.append((seen[key], name))
        seen.setdefault(key, name)
    return out


def test_every_exported_name_is_documented_and_every_documented_name_exported() -> None:
    assert exported() - documented() == set(), "exported but not in docs/api.md's table"
    assert documented() - exported() == set(), "in docs/api.md's table but not exported"


def test_every_exported_name_resolves() -> None:
    for name in exported():
        assert getattr(fisher_verify, name) is not None, name


def test_dir_is_the_face_and_has_no_twin() -> None:
    names = {n for n in dir(fisher_verify) if not n.startswith("_")}
    assert names == exported()
    # the functions (a class names a kind of object, not a question)
    assert twins({n for n in names if n[0].islower()}) == []


def test_the_twin_check_catches_the_removed_pairs() -> None:
    """The check above can fail: each pair that the face once had is found."""
    for pair in [("exact_fisher", "model_fisher_diagonal"), ("variance", "model_variance_diagonal"),
                 ("analyze", "analyze_model"), ("check_fisher_estimator", "check_torch_fisher"),
                 ("assert_fisher_estimator", "assert_torch_fisher")]:
        assert twins(set(pair)), pair
    assert twins({"check_estimator", "assert_estimator", "covariance", "covariance_norm"}) == []


@pytest.mark.parametrize("old", ["model_fisher_diagonal", "model_variance_diagonal", "analyze_model",
                                 "check_fisher_estimator", "assert_fisher_estimator",
                                 "check_torch_fisher", "assert_torch_fisher"])
def test_removed_names_are_gone(old: str) -> None:
    with pytest.raises(AttributeError):
        getattr(fisher_verify, old)


def _code_names(text: str) -> set[str]:
    names = set(re.findall(r"\bfv\.(\w+)", text))
    for m in re.finditer(r"^\s*from fisher_verify import \(?([\w, \n]+)\)?", text, re.M):
        names |= {w.strip().split(" as ")[0] for w in m.group(1).split(",") if w.strip()}
    return names


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_name_the_docs_use_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    if doc == API:  # the table of removed names names them on purpose
        text = text.split("## Old name → new name", 1)[0]
    missing = sorted(n for n in _code_names(text) if n not in exported() and n != "__version__")
    assert missing == [], f"{doc.name} uses fv.{missing[0] if missing else ''}, not exported"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_docs_import_only_public_modules(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    used = set(re.findall(r"^\s*(?:from|import) (fisher_verify[\w.]*)", text, re.M))
    assert used <= PUBLIC_MODULES, sorted(used - PUBLIC_MODULES)


def test_the_public_modules_are_named_in_api_md() -> None:
    text = API.read_text(encoding="utf-8")
    for module in PUBLIC_MODULES - {"fisher_verify"}:
        assert f"`{module}`" in text, module


def test_public_submodules_are_attributes_in_a_fresh_process() -> None:
    """``fv.errors.ParameterError`` works right after ``import fisher_verify as fv`` (before, only
    once something else had imported the submodule), and the private rooms stay unreachable."""
    import subprocess
    import sys

    code = ("import fisher_verify as fv, sys\n"
            "assert issubclass(fv.errors.ParameterError, fv.FisherVerifyError)\n"
            "assert callable(fv.proofs.statement)\n"
            "try:\n    fv.nonexistent_room\nexcept AttributeError:\n    pass\n"
            "else:\n    sys.exit('an unknown attribute resolved')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
