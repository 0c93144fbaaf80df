"""The command line as a property: generated argument lists for every subcommand (valid and
invalid options, values and files) never give a traceback, always exit 0, 1 or 2, and every
exit 2 names what was wrong.

Each generated argument list is a sequence of *pieces* (an option with its value, a file, a
positional); an invalid piece carries the words one of which the refusal must contain (the
option or the value). Only cheap runs are generated: ``check`` runs one quick statement or is
refused before any proof runs, ``report`` is always refused before it runs (one invalid piece
that the command checks first), and ``analyze`` gets a 21-parameter network. That is a choice of
inputs; every generated case is run and judged.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fisher_verify.cli import main

ROOT = Path(__file__).resolve().parents[1]
PROOFS = str(ROOT / "proofs")
QUICK_STATEMENTS = ("remark-3.1", "remark-5.1", "remark-6.1")


@dataclass(frozen=True)
class Piece:
    """Arguments and, when they are invalid, the words a refusal must use (any one of them)."""

    args: tuple[str, ...]
    culprits: tuple[str, ...] = ()

    @property
    def bad(self) -> bool:
        return bool(self.culprits)


def ok(*args: str) -> Piece:
    return Piece(tuple(args))


def bad(args: tuple[str, ...], *culprits: str) -> Piece:
    return Piece(tuple(args), culprits)


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def run_cli(argv: list[str]) -> Outcome:
    """``main(argv)`` in this process, with stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help, --version, usage errors
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return Outcome(int(code), out.getvalue(), err.getvalue())


# --- files -----------------------------------------------------------------------------------


def _write_files(folder: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    W0, W1 = rng.normal(size=(4, 4)) * 0.5, rng.normal(size=(1, 5)) * 0.5
    files = {
        "weights": folder / "W.npz",
        "weights2": folder / "W2.npz",
        "x": folder / "x.npy",
        "xs": folder / "xs.npy",
        "npy_weights": folder / "W.npy",
        "corrupt_zip": folder / "corrupt.npz",
        "text": folder / "notes.txt",
        "empty": folder / "empty.npz",
        "folder": folder / "adir",
        "missing": folder / "missing.npz",
        "pickled_npy": folder / "objects.npy",
        "pickled_npz": folder / "objects.npz",
        "misnamed_npz": folder / "misnamed.npz",
        "nan_npz": folder / "nan.npz",
        "mismatch_npz": folder / "mismatch.npz",
        "x_empty": folder / "x0.npy",
        "x_wrong": folder / "x4.npy",
        "x_nan": folder / "xnan.npy",
        "x_complex": folder / "xcomplex.npy",
        "x_3d": folder / "x3d.npy",
        "torch_text": folder / "model.pt",
    }
    np.savez(files["weights"], W0=W0, W1=W1)
    np.savez(files["weights2"], W0=W0, W1=rng.normal(size=(2, 5)) * 0.5)
    np.save(files["x"], np.array([0.5, -1.0, 2.0]))
    np.save(files["xs"], rng.normal(size=(2, 3)))
    np.save(files["npy_weights"], W0)
    files["corrupt_zip"].write_bytes(b"PK\x03\x04" + bytes(range(200)))
    files["text"].write_text("W0 = [[1, 2]]\n")
    files["empty"].write_bytes(b"")
    files["folder"].mkdir()
    np.save(files["pickled_npy"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(files["pickled_npz"], W0=np.array([None, 1], dtype=object))
    np.savez(files["misnamed_npz"], layer0=W0)
    np.savez(files["nan_npz"], W0=np.full((1, 4), np.nan))
    np.savez(files["mismatch_npz"], W0=W0, W1=rng.normal(size=(1, 7)))
    np.save(files["x_empty"], np.zeros((0, 3)))
    np.save(files["x_wrong"], np.zeros(4))
    np.save(files["x_nan"], np.array([np.nan, 0.0, 1.0]))
    np.save(files["x_complex"], np.array([1j, 0.0, 1.0]))
    np.save(files["x_3d"], np.zeros((1, 2, 3)))
    files["torch_text"].write_text("not a model")
    assert zipfile.is_zipfile(files["weights"]) and pickle  # the archives are real
    return {k: str(v) for k, v in files.items()}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _write_files(tmp_path_factory.mktemp("cli_fuzz"))


#: bad weights files: key -> words the refusal must use besides the file name
BAD_WEIGHTS = ("npy_weights", "corrupt_zip", "text", "empty", "folder", "missing", "pickled_npz",
               "misnamed_npz", "nan_npz", "mismatch_npz", "x")
BAD_X = ("x_empty", "x_wrong", "x_nan", "x_complex", "x_3d", "text", "empty", "folder", "missing",
         "pickled_npy", "weights")


def _name(path: str) -> str:
    return Path(path).name


# --- pieces per subcommand -------------------------------------------------------------------

UNKNOWN_OPTION = st.sampled_from(["--bogus", "--verbose-ish", "-Z"]).map(
    lambda o: bad((o,), o)
)

#: (family, --param items, a valid --at) kept cheap to derive
DERIVE_FAMILIES = [
    ("bernoulli", (), "0.5"),
    ("poisson", (), "-1"),
    ("normal", ("sigma=2",), "0.3"),
    ("geometric", (), "-0.5"),
    ("exponential", (), "-2"),
    ("categorical", ("K=2",), "0,1"),
    ("binomial", ("n=2",), "0.1"),
]


@st.composite
def derive_args(draw: st.DrawFn) -> list[Piece]:
    name, params, at = draw(st.sampled_from(DERIVE_FAMILIES))
    pieces = [ok("derive", name)]
    pieces += [ok("--param", p) for p in params]
    pieces.append(ok("--no-proofs") if draw(st.booleans()) or name != "bernoulli" else ok())
    extra = draw(st.lists(st.sampled_from([
        ok("--at", at),
        ok("--format", "json"),
        ok("--format", "latex"),
    ]), max_size=2, unique_by=lambda p: p.args[0]))
    wrong = [
        bad(("--format", "xml"), "--format", "xml"),
        bad(("--at", "abc"), "--at", "abc"),
        bad(("--at", "nan"), "--at", "nan"),
        bad(("--at", ",,"), "--at", ",,"),
        bad(("--at", "1,2,3"), "--at", "1,2,3"),
        bad(("--at", "1e400"), "--at", "1e400"),
        bad(("--param", "noequals"), "--param", "noequals"),
        bad(("--param", "zz=1"), "zz"),
        bad(("--at",), "--at"),
        bad(("derive-typo",), "derive-typo"),
    ]
    if name in ("geometric", "exponential"):
        wrong.append(bad(("--at", "5"), "--at", "'5'"))
    if name == "categorical":
        wrong += [bad(("--param", "K=1"), "K=1"), bad(("--param", "K=2.5"), "K=2.5")]
    if name == "normal":
        wrong += [bad(("--param", "sigma=-1"), "sigma=-1"), bad(("--param", "sigma=inf"), "inf")]
    choice = draw(st.integers(0, 9))
    if choice < 4:
        extra.append(draw(st.sampled_from(wrong)))
    elif choice == 4:
        pieces[0] = bad(("derive", "no_such_family"), "no_such_family")
    elif choice == 5:
        extra.append(draw(UNKNOWN_OPTION))
    return pieces + extra


@st.composite
def families_args(draw: st.DrawFn) -> list[Piece]:
    pieces = [ok("families")]
    if draw(st.booleans()):
        pieces.append(ok("--json"))
    if draw(st.booleans()):
        pieces.append(draw(st.one_of(UNKNOWN_OPTION, st.just(bad(("extra",), "extra")))))
    return pieces


@st.composite
def check_args(draw: st.DrawFn, files: dict[str, str], out_dir: str) -> list[Piece]:
    pieces = [ok("check", PROOFS, "--quiet")]
    pieces.append(ok("--only", draw(st.sampled_from(QUICK_STATEMENTS))))
    pieces += draw(st.lists(st.sampled_from([
        ok("--json", str(Path(out_dir) / "run.json")),
        ok("--junit", str(Path(out_dir) / "run.xml")),
    ]), max_size=2, unique_by=lambda p: p.args[0]))
    pieces += draw(st.lists(st.sampled_from([
        ok("--profile", "quick"),
        ok("--seed", "3"),
        ok("--jobs", "1"),
    ]), max_size=2, unique_by=lambda p: p.args[0]))
    if draw(st.booleans()):
        pieces.append(draw(st.sampled_from([
            bad(("--only", "thm-99"), "thm-99"),
            bad(("--profile", "fast"), "--profile", "fast"),
            bad(("--seed", "abc"), "--seed", "abc"),
            bad(("--seed", "1.5"), "--seed", "1.5"),
            bad(("--jobs", "-1"), "--jobs", "-1"),
            bad(("--json", files["folder"]), "--json", "adir"),
            bad(("--junit", str(Path(files["missing"]) / "run.xml")), "--junit", "missing.npz"),
            bad(("--json", str(Path(out_dir) / "same.json"),
                 "--junit", str(Path(out_dir) / "." / "same.json")), "--json", "--junit"),
        ])))
    return pieces


REPORT_REFUSALS = [
    bad(("--jobs", "-2"), "--jobs", "-2"),
    bad(("--only", "lemma-99"), "lemma-99"),
    bad(("--profile", "slow"), "--profile", "slow"),
    bad(("--seed", "x"), "--seed", "'x'"),
]


@st.composite
def report_args(draw: st.DrawFn, files: dict[str, str]) -> list[Piece]:
    """Always refused before any proof runs: a report is a minute of work."""
    pieces = [ok("report", PROOFS)]
    refusal = draw(st.sampled_from([*REPORT_REFUSALS,
                                    bad(("--out", files["text"]), "--out", "notes.txt")]))
    pieces.append(refusal)
    pieces += draw(st.lists(st.sampled_from(REPORT_REFUSALS), max_size=1))
    return pieces


@st.composite
def analyze_args(draw: st.DrawFn, files: dict[str, str]) -> list[Piece]:
    """A valid analyze command, then (two times in three) one of its parts made wrong."""
    weights = ok("--weights", files["weights"])
    x = ok("--x", files[draw(st.sampled_from(["x", "xs"]))])
    fam = draw(st.sampled_from([
        ok("--family", "bernoulli"),
        ok("--family", "poisson"),
        ok("--family", "normal", "--param", "sigma=0.5"),
        ok("--family", "exponential"),  # h_L must be < 0: refused naming the domain
    ]))
    if fam.args[1] == "exponential":
        fam = bad(fam.args, "h < 0", "domain")
    options = draw(st.lists(st.sampled_from([
        ok("--samples", "3"),
        ok("-n", "1"),
        ok("--target", "0.5"),
        ok("--json"),
        ok("--activation", "sigmoid"),
    ]), max_size=3, unique_by=lambda p: p.args[0].replace("-n", "--samples")))
    slot = draw(st.sampled_from(["none", "weights", "x", "family", "option", "missing",
                                 "unknown"]))
    if slot == "weights":
        key = draw(st.sampled_from([*BAD_WEIGHTS, "torch_text"]))
        flag = "--torch-model" if key == "torch_text" else "--weights"
        weights = bad((flag, files[key]), _name(files[key]))
    elif slot == "x":
        key = draw(st.sampled_from(BAD_X))
        x = bad(("--x", files[key]), _name(files[key]), "--x")
    elif slot == "family":
        fam = draw(st.sampled_from([
            bad(("--family", "bernoulli", "--param", "sigma=1"), "sigma"),
            bad(("--family", "categorical", "--param", "K=3"), "K=3", "dimension 3"),
            bad(("--family", "nope"), "nope"),
            bad(("--family", "normal", "--param", "sigma=-1"), "sigma=-1"),
            bad(("--family", "normal", "--param", "sigma"), "sigma"),
        ]))
    elif slot == "option":
        options = [p for p in options if p.args[0] not in ("--samples", "-n", "--target",
                                                           "--activation")]
        options.append(draw(st.sampled_from([
            bad(("--samples", "0"), "samples", "0"),
            bad(("--samples", "-4"), "-4"),
            bad(("--samples", "2.5"), "2.5"),
            bad(("--samples", "true"), "true"),
            bad(("-n", "3", "--samples", "4"), "given twice"),
            bad(("--target", "0"), "target"),
            bad(("--target", "1.5"), "target"),
            bad(("--target", "nan"), "target"),
            bad(("--target", "abc"), "abc"),
            bad(("--activation", "relu"), "relu"),
            bad(("--activation", "swish"), "swish"),
        ])))
    elif slot == "missing":
        which = draw(st.sampled_from(["weights", "x", "family"]))
        culprit = {"weights": "--weights", "x": "--x", "family": "--family"}[which]
        gone = bad((), culprit)
        weights, x, fam = (gone if which == "weights" else weights, gone if which == "x" else x,
                           gone if which == "family" else fam)
    elif slot == "unknown":
        options.append(draw(UNKNOWN_OPTION))
    parts = [weights, x, fam, *options]
    return [ok("analyze"), *draw(st.permutations(parts))]


def _judge(pieces: list[Piece]) -> Outcome:
    argv = [a for p in pieces for a in p.args]
    result = run_cli(argv)
    text = result.out + result.err
    assert "Traceback" not in text, (argv, text)
    assert result.code in (0, 1, 2), (argv, result)
    culprits = [c for p in pieces for c in p.culprits]
    if any(p.bad for p in pieces):
        assert result.code == 2, (argv, result)
        assert any(c in result.err for c in culprits), (argv, culprits, result.err)
    else:
        assert result.code in (0, 1), (argv, result)
    return result


@pytest.fixture(scope="module")
def strategies(files: dict[str, str], tmp_path_factory: pytest.TempPathFactory
               ) -> st.SearchStrategy[list[Piece]]:
    out_dir = str(tmp_path_factory.mktemp("cli_out"))
    analyze, check = analyze_args(files), check_args(files, out_dir)
    return st.one_of(families_args(), derive_args(), derive_args(), check, check,
                     report_args(files), analyze, analyze, analyze)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture],
          max_examples=max(settings.default.max_examples, 120))
@given(data=st.data())
def test_cli_never_tracebacks_and_names_bad_arguments(
    data: st.DataObject, strategies: st.SearchStrategy[list[Piece]]
) -> None:
    _judge(data.draw(strategies))


# --- the known cases, kept as examples (issue 8) ---------------------------------------------


@given(case=st.sampled_from(["npy", "corrupt", "text", "folder"]))
@example(case="npy")
@example(case="corrupt")
@example(case="folder")
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_known_bad_weights(case: str, files: dict[str, str]) -> None:
    path = {"npy": files["npy_weights"], "corrupt": files["corrupt_zip"],
            "text": files["text"], "folder": files["folder"]}[case]
    res = _judge([ok("analyze", "--x", files["x"], "--family", "bernoulli"),
                  bad(("--weights", path), _name(path))])
    assert "pickled" not in res.err and "does not exist" not in res.err
    want = {"npy": "holds one .npy array", "corrupt": "not a readable .npz archive",
            "text": "not a readable .npz archive", "folder": "is a folder"}[case]
    assert want in res.err


def test_empty_x_message_says_m_at_least_one(files: dict[str, str]) -> None:
    res = _judge([ok("analyze", "--weights", files["weights"], "--family", "bernoulli"),
                  bad(("--x", files["x_empty"]), "x0.npy")])
    assert "M >= 1" in res.err and "(0, 3)" in res.err


def test_same_file_for_json_and_junit_refused(tmp_path: Path) -> None:
    res = _judge([ok("check", PROOFS, "--only", "remark-3.1"),
                  bad(("--json", str(tmp_path / "run.json"),
                       "--junit", str(tmp_path / "sub" / ".." / "run.json")), "--junit")])
    assert "both name" in res.err and not (tmp_path / "run.json").exists()


def test_valid_runs_exit_zero(files: dict[str, str], tmp_path: Path) -> None:
    """The property's valid side is not vacuous: these run and succeed."""
    assert _judge([ok("analyze", "--weights", files["weights"], "--x", files["xs"],
                      "--family", "poisson", "--json")]).code == 0
    res = _judge([ok("check", PROOFS, "--only", "remark-3.1", "--json",
                     str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"))])
    assert res.code == 0 and (tmp_path / "r.json").exists() and (tmp_path / "r.xml").exists()
