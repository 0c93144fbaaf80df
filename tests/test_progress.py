"""What ``check`` and ``report`` show on stderr while statements run (issue 8)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from fisher_verify.cli import main

SLOW = """
import sys
import time

from fisher_verify.proofs import statement


@statement("{sid}", claim="x = x", method="property over random networks")
def check(ctx):
    sys.stderr.write("inside {sid}\\n")
    time.sleep({sleep})
    ctx.close("x", 1.0, 1.0)
    return ctx.conclude()
"""


def _proofs(tmp_path: Path, ids: tuple[str, ...], sleep: float = 0.2) -> Path:
    folder = tmp_path / "proofs"
    folder.mkdir()
    for sid in ids:
        (folder / f"{sid}.py").write_text(textwrap.dedent(SLOW.format(sid=sid, sleep=sleep)))
    return folder


def test_plain_lines_say_what_runs_before_its_result(tmp_path, capfd):
    """Not a terminal: ``running <id>`` is printed before the statement's own output (so while
    it runs), its result line after; stdout holds only the table. (capfd: a statement runs in a
    worker process, which writes to the file descriptor.)"""
    folder = _proofs(tmp_path, ("slow-a", "slow-b"))
    assert main(["check", str(folder)]) == 0
    out = capfd.readouterr()
    err = out.err.splitlines()
    for sid in ("slow-a", "slow-b"):
        running, inside = err.index(f"running {sid}"), err.index(f"inside {sid}")
        result = next(i for i, line in enumerate(err) if line.startswith("[")
                      and f"] {sid} verified" in line)
        assert running < inside < result
    assert "\r" not in out.err and "\033" not in out.err  # no terminal control codes in logs
    assert "running" not in out.out and "#" not in out.out


def test_jobs_show_the_statements_in_flight(tmp_path, capsys):
    """``-j 2``: both statements start before either finishes, and the second start line names
    both."""
    folder = _proofs(tmp_path, ("slow-a", "slow-b"), sleep=0.5)
    assert main(["check", str(folder), "-j", "2"]) == 0
    err = capsys.readouterr().err.splitlines()
    starts = [i for i, line in enumerate(err) if line.startswith("running ")]
    first_result = next(i for i, line in enumerate(err) if line.startswith("[1/2]"))
    assert len(starts) == 2 and max(starts) < first_result
    assert "in flight: slow-a, slow-b" in err[starts[1]]


def test_quiet_prints_no_progress(tmp_path, capsys):
    folder = _proofs(tmp_path, ("slow-a",), sleep=0.0)
    assert main(["check", str(folder), "-q"]) == 0
    assert "running" not in capsys.readouterr().err


def _run_on_pty(args: list[str], cwd: Path, timeout: float = 120.0) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; return (exit code, what the terminal
    got)."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "fisher_verify.cli", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_terminal_gets_a_live_bar(tmp_path):
    """On a pseudo-terminal the progress is one line redrawn in place: a bar, the count and the
    statement running now, with its elapsed time; it is erased at the end."""
    folder = _proofs(tmp_path, ("slow-a", "slow-b"), sleep=1.2)
    code, seen = _run_on_pty(["check", str(folder)], tmp_path)
    assert code == 0, seen
    assert "\r\033[K[" + "-" * 24 + "] 0/2 running slow-a 0 s" in seen
    assert "[" + "#" * 12 + "-" * 12 + "] 1/2 running slow-b" in seen
    # the redraw moves while a statement runs (the ticker), not only between statements
    assert seen.count("running slow-b") >= 2
    assert seen.endswith("\r\033[K")  # the live line is erased at the end
    assert "\n[" not in seen  # no plain progress lines on a terminal


def test_report_shows_its_stages(tmp_path, monkeypatch):
    """``report`` says what it does after the statements (figures, tightness sweep, Table 1)
    instead of staying silent for half a minute: on a terminal, in the live line."""
    from fisher_verify._src.commands.progress import ProgressDisplay

    class Sink:
        def __init__(self) -> None:
            self.text = ""

        def write(self, s: str) -> int:
            self.text += s
            return len(s)

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return True

    sink = Sink()
    monkeypatch.setattr(sys, "stderr", sink)
    folder = _proofs(tmp_path, ("slow-a",), sleep=0.0)
    assert main(["report", str(folder), "--out", str(tmp_path / "out")]) == 0
    assert "] 0/1 running slow-a" in sink.text
    full = "\r\033[K[" + "#" * 24 + "] 1/1 "
    for stage in ("Figure 1", "tightness sweep (200 networks)", "Table 1"):
        assert full + stage in sink.text
    assert ProgressDisplay(sink).tty and sink.text.endswith("\r\033[K")


def test_terminal_shows_every_statement_in_flight(tmp_path):
    """``-j 2`` on a terminal: the live line names both running statements with their times."""
    folder = _proofs(tmp_path, ("slow-a", "slow-b"), sleep=1.2)
    code, seen = _run_on_pty(["check", str(folder), "-j", "2"], tmp_path)
    assert code == 0, seen
    assert re.search(r"\] 0/2 running slow-a \d+ s, slow-b \d+ s", seen), seen
    assert seen.endswith("\r\033[K")


def test_live_line_fits_the_terminal_width():
    """A line longer than the terminal would wrap, and ``\\r`` rewinds only its last row: the
    live line is cut to the terminal's width."""
    import fcntl
    import struct
    import termios

    from fisher_verify._src.commands.progress import ProgressDisplay

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    try:
        with open(slave, "w", closefd=True) as stream:
            shown = ProgressDisplay(stream, total=1)
            assert shown.tty
            shown.started("a-statement-with-a-very-long-identifier")
            shown.close()
        data = b""
        while select.select([master], [], [], 0.2)[0]:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    finally:
        os.close(master)
    drawn = [seg for seg in data.decode().split("\r\033[K") if seg]
    assert drawn and drawn[0].startswith("[" + "-" * 24 + "] 0/1 running")
    assert max(len(seg) for seg in drawn) == 39
