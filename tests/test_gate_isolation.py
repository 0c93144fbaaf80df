"""The gate cannot be fooled (issue 14 §1): a proof that exits, hangs, raises BaseException or
changes global state fails alone with its reason named; ``-j`` is capped; outputs are resolved,
checked and opened before the run; ``analyze --model`` builders that exit are refused.

The cases that could end this very process if isolation broke (``os._exit``) run the CLI in a
subprocess, so a regression fails the test instead of ending pytest with status 0.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401 - imported here so that forked workers inherit it (fast tests)

from fisher_verify._src.commands.common import workers_for
from fisher_verify._src.commands.outputs import REPORT_FILES, prepare_report_dir
from fisher_verify._src.proofs import discover, run_all
from fisher_verify._src.proofs.isolate import cpu_count
from fisher_verify.cli import main
from fisher_verify.errors import FisherVerifyError

TIMEOUT = 2.0

HEADER = '''
import os, random, sys
import numpy as np
import torch
from fisher_verify.proofs import statement
'''

#: a statement that reports the global state it sees (the first and the last of a file)
WITNESS = '''
@statement("{sid}", claim="", method="m")
def witness_{name}(ctx):
    ctx.record("cwd", os.getcwd())
    ctx.record("env", os.environ.get("FV_POISON", "unset"))
    ctx.record("errstate", np.geterr())
    ctx.record("np_global", float(np.random.random()))
    ctx.record("py_global", random.random())
    ctx.record("torch_dtype", str(torch.get_default_dtype()))
    ctx.record("torch_global", float(torch.rand(1)))
    ctx.record("grad", torch.is_grad_enabled())
    return ctx.verified("saw the state")
'''

#: poisons that leave the process alive: each must fail (or hold) alone and leave no trace
IN_PROCESS = '''
@statement("exit-0", claim="", method="m")
def exits(ctx):
    sys.exit(0)

@statement("kbd", claim="", method="m")
def interrupts(ctx):
    raise KeyboardInterrupt

class Custom(BaseException):
    pass

@statement("base-exc", claim="", method="m")
def base(ctx):
    raise Custom("not an Exception")

@statement("poison-state", claim="", method="m")
def poisons(ctx):
    os.chdir("/")
    os.environ["FV_POISON"] = "1"
    np.seterr(all="raise")
    np.random.seed(1)
    random.seed(1)
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(1)
    torch.set_grad_enabled(False)
    return ctx.verified("poisoned and returned")
'''

#: poisons that end or stall the worker process
KILLERS = '''
@statement("os-exit", claim="", method="m")
def ends(ctx):
    os._exit(0)

@statement("hang", claim="", method="m")
def hangs(ctx):
    while True:
        pass
'''


def _folder(root: Path, name: str, *bodies: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / f"{name}.py").write_text(textwrap.dedent(HEADER + "".join(bodies)))
    return folder


def _witnessed(root: Path, name: str, *bodies: str) -> Path:
    return _folder(root, name, WITNESS.format(sid="first", name="first"), *bodies,
                   WITNESS.format(sid="last", name="last"))


REASONS = {
    "exit-0": "ended its process with exit code 0 before reporting (sys.exit",
    "kbd": "raised KeyboardInterrupt",
    "base-exc": "raised Custom: not an Exception",
    "os-exit": "ended its process with exit code 0 before reporting (os._exit",
    "hang": f"exceeded the per-statement time limit of {TIMEOUT:g} s",
}


def _check_document(doc: dict, expected: dict[str, str]) -> None:
    got = {s["id"]: s for s in doc["statements"]}
    assert list(got) == list(expected)
    for sid, verdict in expected.items():
        assert got[sid]["verdict"] == verdict, (sid, got[sid]["summary"])
        if sid in REASONS:
            assert got[sid]["summary"].startswith(REASONS[sid]), got[sid]["summary"]
    assert doc["all_hold"] is False
    # nothing a proof changed reached the statement after it
    first, last = got["first"]["evidence"], got["last"]["evidence"]
    assert first == last
    assert first["env"] == "unset" and first["torch_dtype"] == "torch.float32"
    assert first["errstate"] == {"divide": "warn", "over": "warn", "under": "ignore",
                                 "invalid": "warn"}
    assert first["grad"] is True


def test_in_process_poisons_fail_alone_and_leave_no_trace(tmp_path, capsys, monkeypatch):
    """sys.exit(0), KeyboardInterrupt, a BaseException: exit 1, each an error naming why;
    chdir, env, np.seterr, global RNGs, torch dtype/grad mode do not reach the next statement;
    the relative --json/--junit land where they were named, not under the proof's chdir."""
    folder = _witnessed(tmp_path, "p", IN_PROCESS)
    monkeypatch.chdir(tmp_path)
    rc = main(["check", "p", "--json", "run.json", "--junit", "run.xml",
               "--timeout", str(TIMEOUT)])
    out = capsys.readouterr().out
    assert rc == 1
    expected = {"first": "verified", "exit-0": "error", "kbd": "error", "base-exc": "error",
                "poison-state": "verified", "last": "verified"}
    for sid in expected:
        assert sid in out
    doc = json.loads((tmp_path / "run.json").read_text())
    _check_document(doc, expected)
    assert doc["statements"][0]["evidence"]["cwd"] == str(tmp_path)
    assert Path.cwd() == tmp_path and "FV_POISON" not in os.environ
    suite = ET.parse(tmp_path / "run.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("errors")) == ("6", "3")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    for sid in ("exit-0", "kbd", "base-exc"):
        assert cases[sid].find("error").get("message").startswith(REASONS[sid])
    assert not list(folder.glob("*.json")) and not Path("/run.json").exists()


#: proof files that misbehave when imported (discovery runs in the engine's own process)
MODULE_POISONS = {
    "mod_chdir": "os.chdir('/')\nos.environ['FV_POISON'] = '1'\nnp.seterr(all='raise')\n"
                 "torch.set_default_dtype(torch.float64)\n"
                 "@statement('m-chdir', claim='', method='m')\n"
                 "def fine(ctx):\n    return ctx.verified('imported after a chdir')\n",
    "mod_exit": "@statement('m-exit', claim='', method='m')\ndef f(ctx):\n    pass\nsys.exit(0)\n",
    "mod_kbd": "@statement('m-kbd', claim='', method='m')\ndef f(ctx):\n    pass\n"
               "raise KeyboardInterrupt\n",
    "mod_loop": "@statement('m-loop', claim='', method='m')\ndef f(ctx):\n    pass\n"
                "while True:\n    pass\n",
    "mod_osexit": "@statement('m-osexit', claim='', method='m')\ndef f(ctx):\n    pass\n"
                  "os._exit(0)\n",
}
MODULE_REASONS = {
    "m-exit": "cannot import mod_exit.py: called sys.exit(0) while being imported",
    "m-kbd": "cannot import mod_kbd.py: raised KeyboardInterrupt while being imported",
    "m-loop": f"cannot import mod_loop.py: took longer than {TIMEOUT:g} s to import",
    "m-osexit": "cannot import mod_osexit.py: called os._exit(0) while being imported",
}


def test_no_proof_can_end_or_hang_the_gate(tmp_path):
    """The whole set, os._exit and endless loops included (in statements and at import), in a
    separate process: exit 1, the table lists every statement, JSON and JUnit are written, every
    other statement holds and sees the engine's working directory and state."""
    folder = _witnessed(tmp_path, "p", KILLERS, IN_PROCESS)
    for name, body in MODULE_POISONS.items():
        (folder / f"{name}.py").write_text(HEADER + body)
    js, xml = tmp_path / "run.json", tmp_path / "run.xml"
    expected = {"m-chdir": "verified", "m-exit": "error", "m-kbd": "error", "m-loop": "error",
                "m-osexit": "error", "first": "verified", "os-exit": "error", "hang": "error",
                "exit-0": "error", "kbd": "error", "base-exc": "error",
                "poison-state": "verified", "last": "verified"}
    for jobs in ("1", "2"):
        proc = subprocess.run(
            [sys.executable, "-m", "fisher_verify.cli", "check", str(folder), "-q",
             "-j", jobs, "--timeout", str(TIMEOUT), "--json", "run.json", "--junit", str(xml)],
            capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 1, proc.stderr
        assert "4/13 hold (9 error, 4 verified)" in proc.stdout
        doc = json.loads(js.read_text())
        _check_document(doc, expected)
        summaries = {s["id"]: s["summary"] for s in doc["statements"]}
        for sid, reason in MODULE_REASONS.items():
            assert summaries[sid].startswith(reason), summaries[sid]
        assert doc["statements"][5]["evidence"]["cwd"] == str(tmp_path)
        suite = ET.parse(xml).getroot().find("testsuite")
        assert (suite.get("tests"), suite.get("errors")) == ("13", "9")
        js.unlink()
        xml.unlink()


def test_outcome_independent_of_jobs_and_restoration(tmp_path):
    """The same records under -j 1 and -j 2 (per-statement seeds; every worker starts from and
    returns to the same global state)."""
    _witnessed(tmp_path, "p", IN_PROCESS)
    entries = discover([tmp_path / "p"])
    one = run_all(entries, seed=3, timeout=30)
    two = run_all(entries, seed=3, jobs=2, timeout=30)
    key = [(r.id, r.verdict, r.summary, r.evidence) for r in one]
    assert key == [(r.id, r.verdict, r.summary, r.evidence) for r in two]


def test_jobs_are_capped_to_the_cpus(tmp_path, capsys):
    """-j 10000: a note naming the limit, and no more processes than CPUs (counted by the pids
    the statements see)."""
    body = "".join(f'''
@statement("pid-{k}", claim="", method="m")
def pid_{k}(ctx):
    return ctx.verified(pid=os.getpid())
''' for k in range(6))
    folder = _folder(tmp_path, "pids", body)
    cpus = cpu_count()
    assert workers_for(10000, 6) == min(cpus, 6) and workers_for(0, 100) == cpus
    assert workers_for(1, 6) == 1 and workers_for(3, 2) == min(2, cpus)
    js = tmp_path / "run.json"
    assert main(["check", str(folder), "-j", "10000", "--json", str(js)]) == 0
    err = capsys.readouterr().err
    assert f"--jobs 10000 is more than the {cpus} CPU(s) available; running {cpus}" in err
    pids = {s["evidence"]["pid"] for s in json.loads(js.read_text())["statements"]}
    assert 1 <= len(pids) <= min(cpus, 6) and os.getpid() not in pids


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_timeout_must_be_positive_and_finite(tmp_path, capsys, value):
    folder = _folder(tmp_path, "g", WITNESS.format(sid="g", name="g"))
    assert main(["check", str(folder), "--timeout", value]) == 2
    err = capsys.readouterr().err
    assert "--timeout must be a finite number of seconds > 0" in err and "running" not in err


def test_json_dash_is_stdout(tmp_path, capsys, monkeypatch):
    folder = _folder(tmp_path, "g", WITNESS.format(sid="g", name="g"))
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(folder), "--json", "-"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)  # stdout is the document alone
    assert doc["tool"] == "fisher-verify check" and doc["statements"][0]["id"] == "g"
    assert "1/1 hold" in out.err and not (tmp_path / "-").exists()
    assert main(["check", str(folder), "--json", "-", "--junit", "-"]) == 2
    assert "both name standard output" in capsys.readouterr().err


def test_foreign_files_are_not_overwritten_without_force(tmp_path, capsys):
    """--junit README.md is refused before any statement runs and the file is untouched;
    --force replaces it; this tool's own earlier outputs and empty files are replaced freely."""
    folder = _folder(tmp_path, "g", WITNESS.format(sid="g", name="g"))
    readme = tmp_path / "README.md"
    readme.write_text("# my project\n")
    for flag in ("--junit", "--json"):
        assert main(["check", str(folder), flag, str(readme)]) == 2
        err = capsys.readouterr().err
        assert str(readme) in err and "--force" in err and "running" not in err
        assert readme.read_text() == "# my project\n"
    js, xml = tmp_path / "run.json", tmp_path / "run.xml"
    xml.write_text("")  # an empty file is nobody's work
    for _ in range(2):  # the second run replaces the first run's files
        assert main(["check", str(folder), "--json", str(js), "--junit", str(xml)]) == 0
    assert json.loads(js.read_text())["tool"] == "fisher-verify check"
    assert main(["check", str(folder), "--junit", str(readme), "--force"]) == 0
    assert ET.parse(readme).getroot().find("testsuite").get("name") == "fisher-verify"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_unwritable_outputs_are_exit_2_at_once_naming_the_file(tmp_path, capsys, monkeypatch):
    folder = _folder(tmp_path, "g", WITNESS.format(sid="g", name="g"))
    for argv, words in (
        (["--json", "/proc/fisher-verify-run.json"], "/proc/fisher-verify-run.json"),
        (["--junit", str(tmp_path / "no" / "run.xml")], "folder"),
        (["--json", ""], "--json is an empty file name"),
    ):
        assert main(["check", str(folder), *argv]) == 2
        err = capsys.readouterr().err
        assert words in err and "running" not in err and len(err.strip().splitlines()) == 1

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    target = tmp_path / "run.json"
    assert main(["check", str(folder), "--json", str(target)]) == 2
    err = capsys.readouterr().err
    assert str(target) in err and "No space left on device" in err and "running" not in err
    assert not target.exists() and not list(tmp_path.glob(".run.json.*"))


def test_write_failure_after_the_run_names_the_file(tmp_path, capsys):
    folder = _folder(tmp_path, "g", WITNESS.format(sid="g", name="g"))
    if not os.path.exists("/dev/full"):  # pragma: no cover - Linux has it
        pytest.fail("/dev/full is needed")
    assert main(["check", str(folder), "--json", "/dev/full"]) == 2
    assert "cannot write --json '/dev/full'" in capsys.readouterr().err


def test_report_out_is_checked_before_the_run(tmp_path, capsys):
    folder = _folder(tmp_path, "g", WITNESS.format(sid="g", name="g"))
    assert main(["report", str(folder), "--out", ""]) == 2
    assert "--out is an empty folder name" in capsys.readouterr().err
    assert main(["report", str(folder), "--out", "/proc/fisher-verify-report"]) == 2
    err = capsys.readouterr().err
    assert "cannot create output folder '/proc/fisher-verify-report'" in err and "running" not in err
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "report.md").write_text("my notes\n")
    assert main(["report", str(folder), "--out", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert "report.md" in err and "--force" in err and "running" not in err
    assert (foreign / "report.md").read_text() == "my notes\n"
    assert prepare_report_dir(str(foreign), force=True) == foreign
    # an earlier report's folder (its certificate carries the mark) is replaced freely
    (foreign / "certificate.json").write_text(json.dumps({"tool": "fisher-verify check"}))
    assert prepare_report_dir(str(foreign), force=False) == foreign
    (foreign / "certificate.json").write_text('{"tool": "someone else"}')
    with pytest.raises(FisherVerifyError, match="refusing to overwrite"):
        prepare_report_dir(str(foreign), force=False)
    relative = os.path.relpath(tmp_path / "new", Path.cwd())
    assert prepare_report_dir(relative, force=False) == tmp_path / "new"  # absolute
    assert set(REPORT_FILES) >= {"report.md", "report.html", "certificate.json"}


def test_report_runs_statements_isolated(tmp_path, capsys, monkeypatch):
    """A proof's sys.exit(0) under ``report``: exit 1 and the report shows the error."""
    import fisher_verify._src.report.build as build

    seen = {}

    def fake_build(records, out, *args, **kwargs):
        seen["records"], seen["out"] = list(records), Path(out)
        return build.Report(Path(out), Path(out) / "report.md", Path(out) / "report.html",
                            Path(out) / "certificate.json")

    monkeypatch.setattr(build, "build_report", fake_build)
    folder = _witnessed(tmp_path, "p", IN_PROCESS)
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(folder), "--out", "rep", "--timeout", str(TIMEOUT)]) == 1
    verdicts = {r.id: (r.verdict, r.summary) for r in seen["records"]}
    assert verdicts["exit-0"][0] == "error" and verdicts["exit-0"][1].startswith(REASONS["exit-0"])
    assert verdicts["last"][0] == "verified" and seen["out"] == tmp_path / "rep"


BUILDERS = {
    "fv_exit_builder": "import sys\ndef build():\n    sys.exit(0)\n",
    "fv_kbd_builder": "def build():\n    raise KeyboardInterrupt\n",
    "fv_import_exit": "import sys\nsys.exit(0)\ndef build():\n    pass\n",
    "fv_osexit_builder": "import os\ndef build():\n    os._exit(0)\n",
    "fv_import_osexit": "import os\nos._exit(0)\n",
}


def test_model_builder_cannot_exit_without_a_verdict(tmp_path):
    """analyze --model with a builder (or a module) that calls sys.exit(0), os._exit(0) or
    raises KeyboardInterrupt: exit 2 naming the builder and what it did, in a subprocess so that
    a regression cannot end pytest."""
    for name, code in BUILDERS.items():
        (tmp_path / f"{name}.py").write_text(code)
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    script = textwrap.dedent('''
        import sys
        from fisher_verify.cli import main
        codes = []
        for name in sys.argv[1:]:
            codes.append(main(["analyze", "--model", f"{name}:build", "--data", "x.npy",
                               "--family", "normal"]))
        print("CODES", codes)
    ''')
    proc = subprocess.run([sys.executable, "-c", script, *BUILDERS], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"CODES {[2] * len(BUILDERS)}" in proc.stdout, (proc.stdout, proc.stderr)
    err = proc.stderr
    assert "the --model builder fv_exit_builder:build() called sys.exit(0)" in err
    assert "the --model builder fv_kbd_builder:build() failed: KeyboardInterrupt" in err
    assert "importing 'fv_import_exit' for --model 'fv_import_exit:build' called sys.exit(0)" in err
    assert "the --model builder fv_osexit_builder:build() called os._exit(0)" in err
    assert "importing 'fv_import_osexit' for --model 'fv_import_osexit:build' called os._exit(0)" in err
    assert "Traceback" not in err


def test_default_time_limits_per_profile(capsys):
    """300 s per statement in the quick gate, 1800 s in the thorough profile (the slowest
    statements: cov-n 12 s and thm-3 521 s on two shared cores), and the help says so."""
    from fisher_verify._src.commands.common import check_timeout

    assert check_timeout(None, "quick") == 300.0 and check_timeout(None, "thorough") == 1800.0
    assert check_timeout(2.5, "thorough") == 2.5
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default 300 with --profile quick, 1800 with thorough)" in help_text


def test_a_closed_pipe_does_not_turn_a_failure_into_exit_0(tmp_path):
    """`check --json - | head`: the reader is gone, the verdict's exit code stays (1 here)."""
    folder = _folder(tmp_path, "bad", '''
@statement("wrong", claim="", method="m")
def wrong(ctx):
    ctx.close("1 = 2", 1.0, 2.0)
    return ctx.conclude()
''')
    for extra in (["--json", "-"], []):
        proc = subprocess.Popen([sys.executable, "-m", "fisher_verify.cli", "check", str(folder),
                                 "-q", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()  # the reader leaves before anything is written
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
        assert b"Traceback" not in err


def test_a_statement_runs_when_the_engine_already_ran_torch_in_parallel(tmp_path):
    """A forked worker of a process whose torch already ran parallel work (a pytest session, a
    notebook) inherits GNU OpenMP's pool without its threads: the first parallel region then
    waited forever, and the statement ended at the time limit. Run in a fresh process so that
    the engine's torch state is known."""
    (tmp_path / "proofs").mkdir()
    (tmp_path / "proofs" / "parallel.py").write_text(textwrap.dedent("""
        import torch
        from fisher_verify.proofs import statement

        @statement("x-parallel", claim="e^0 = 1", method="property over random networks")
        def check(ctx):
            big = torch.zeros(2_000_000, dtype=torch.float64)
            ctx.close("exp(0) = 1 everywhere", float(torch.exp(big).mean()), 1.0)
            return ctx.conclude()
    """))
    script = textwrap.dedent(f"""
        import torch
        torch.set_num_threads(2)
        torch.exp(torch.zeros(2_000_000, dtype=torch.float64)).sum()  # the pool starts here
        from fisher_verify._src.proofs import discover, run_all
        rec = run_all(discover([{str(tmp_path / "proofs")!r}]), timeout=60)[0]
        print(rec.verdict, rec.summary)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("verified"), out.stdout
