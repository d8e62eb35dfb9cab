"""The real terminal program in a real (tmux) terminal: it draws the dashboard and quits cleanly.

``wanderer-console demo`` runs over the simulator in a detached 120×40 tmux pane on a private tmux
server. The pane runs ``sh -c '<demo>; echo EXITED:$?'`` so that after ``q`` the exit status is
printed on the normal screen, which must hold none of the dashboard's box drawing (the alternate
screen was left and the terminal restored). ``q`` with notifications pending asks first (the
demo's engine runs in the console's process); the test answers ``q`` again.

At 80×24 (the default terminal of many SSH clients) every panel's title and at least one row of
its content are read from the captured screen, tab by tab.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(90),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

WIDTH, HEIGHT = 120, 40
START_TIMEOUT = 20.0
"""The dashboard must show connected sources within this long."""
EXIT_TIMEOUT = 15.0
"""After ``q`` the program must be gone within this long."""
BOX_DRAWING = frozenset("─│╭╮╰╯┌┐└┘━┃")


class Tmux:
    """A private tmux server (``-L``) so the test never touches the user's sessions."""

    def __init__(self) -> None:
        self.socket = f"wc-test-{uuid.uuid4().hex[:12]}"
        self.env = {**os.environ, "TERM": os.environ.get("TERM") or "xterm-256color"}
        self.env.pop("TMUX", None)
        self.socket_path: Path | None = None

    def run(self, *args: str) -> str:
        """One tmux command; its stdout."""
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def capture(self) -> str:
        """What the pane shows now (the alternate screen while a full-screen app runs)."""
        return self.run("capture-pane", "-p", "-t", "wc")

    def wait_until(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        """Capture until ``predicate(screen)`` holds; after ``timeout``, fail showing the screen."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.capture()
            if predicate(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{what} not seen within {timeout} s; the pane shows:\n{screen}")

    def kill(self) -> None:
        """Stop this test's tmux server (and the pane's processes with it)."""
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"],
            env=self.env,
            capture_output=True,
            timeout=10,
            check=False,
        )
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    server = Tmux()
    try:
        yield server
    finally:
        server.kill()


PROMPT = "Quit with notifications pending?"


def quit_demo(tmux: Tmux) -> str:
    """After ``q``: answer the pending-notifications question if it comes; the exit screen."""
    screen = tmux.wait_until(
        lambda s: "EXITED:" in s or PROMPT in s, EXIT_TIMEOUT, "the exit or the quit question"
    )
    if PROMPT in screen:
        # The question follows the panel's pending figure while it waits for an answer: the
        # demo's outbox can drain between the ``q`` and the frame read here.
        said = " ".join(re.sub("[│▐]", " ", screen).split())
        assert re.search(
            r"\d+ notifications? (is|are) pending\. .* delivered at the next start", said
        ) or ("No notification is pending now." in said), screen
        tmux.run("send-keys", "-t", "wc", "q")
        screen = tmux.wait_until(lambda s: "EXITED:" in s, EXIT_TIMEOUT, "the program's exit")
    return screen


def test_demo_draws_dashboard_and_quits_cleanly(tmux: Tmux, tmp_path: Path) -> None:
    demo = shlex.join(
        [sys.executable, "-m", "wanderer_console", "demo", "--data-dir", str(tmp_path / "data")]
    )
    # `exec sleep` keeps the pane (and its last screen) alive after the program exits.
    script = f"{demo}; echo EXITED:$?; exec sleep 120"
    tmux.run(
        "new-session", "-d", "-s", "wc", "-x", str(WIDTH), "-y", str(HEIGHT),
        "-c", str(Path.cwd()), shlex.join(["sh", "-c", script]),
    )  # fmt: skip
    tmux.socket_path = Path(tmux.run("display-message", "-p", "#{socket_path}").strip())

    screen = tmux.wait_until(
        lambda s: "Wanderer Console" in s and "Connections" in s and "killstream:systems" in s,
        START_TIMEOUT,
        "the dashboard with its connections panel",
    )
    assert "╭" in screen  # panels are drawn with box characters

    tmux.run("send-keys", "-t", "wc", "q")
    screen = quit_demo(tmux)

    assert "EXITED:0" in screen, screen
    leftovers = BOX_DRAWING & set(screen)
    assert not leftovers, f"dashboard drawing left on the terminal ({leftovers}):\n{screen}"
    assert "Connections" not in screen, screen
    # The engine stops after the console has gone: its log lines (JSON, for --no-ui's log
    # collectors) must not land on the operator's shell.
    assert '"level"' not in screen, screen
    assert '"logger"' not in screen, screen


def test_a_dropped_terminal_stops_the_demo_gracefully_and_removes_its_temporary_data(
    tmux: Tmux, tmp_path: Path
) -> None:
    # Killing the tmux server is what an SSH drop does to the console: the terminal goes away
    # and the process gets SIGHUP. The demo's temporary data directory is removed only by a
    # graceful stop, so its disappearance shows the stop ran to the end.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    tmux.env["TMPDIR"] = str(scratch)
    demo = shlex.join([sys.executable, "-m", "wanderer_console", "demo"])
    tmux.run(
        "new-session", "-d", "-s", "wc", "-x", str(WIDTH), "-y", str(HEIGHT),
        "-c", str(Path.cwd()), "-e", f"TMPDIR={scratch}", shlex.join(["sh", "-c", demo]),
    )  # fmt: skip
    tmux.socket_path = Path(tmux.run("display-message", "-p", "#{socket_path}").strip())
    tmux.wait_until(
        lambda s: "Wanderer Console" in s and "killstream:systems" in s,
        START_TIMEOUT,
        "the dashboard",
    )
    demo_dirs = list(scratch.glob("wc-demo-*"))
    assert len(demo_dirs) == 1
    tmux.kill()
    deadline = time.monotonic() + EXIT_TIMEOUT
    while demo_dirs[0].exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not demo_dirs[0].exists(), "the demo did not stop gracefully on SIGHUP"


def _names_data_dir(screen: str, data: Path) -> bool:
    """The title names ``data``: in full, or cut with an ellipsis at the terminal's width (a
    long temporary path, as under pytest-xdist; at 80 columns, after delivery's state and the
    host, only its first dozen characters or so may fit)."""
    for line in screen.splitlines():
        if "Wanderer Console —" in line and " · " in line:
            # delivery's state · [the cluster ·] host · path · version
            for part in line.split(" · ")[1:]:
                shown = part.strip().removesuffix("…")
                if len(shown) >= 12 and str(data).startswith(shown):
                    return True
    return False


def test_attach_opens_the_console_on_a_running_engine_and_quitting_leaves_it_running(
    tmux: Tmux, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    engine = subprocess.Popen(
        [sys.executable, "-m", "wanderer_console", "demo", "--no-ui", "--data-dir", str(data)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (data / "control.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        attach = shlex.join(
            [sys.executable, "-m", "wanderer_console", "attach", "--data-dir", str(data)]
        )
        for round_ in ("quit", "hang up"):
            script = f"{attach}; echo EXITED:$?; exec sleep 120"
            tmux.run(
                "new-session", "-d", "-s", "wc", "-x", str(WIDTH), "-y", str(HEIGHT),
                "-c", str(Path.cwd()), shlex.join(["sh", "-c", script]),
            )  # fmt: skip
            tmux.socket_path = Path(tmux.run("display-message", "-p", "#{socket_path}").strip())
            screen = tmux.wait_until(
                lambda s: "killstream:systems" in s and _names_data_dir(s, data),
                START_TIMEOUT,
                "the attached dashboard naming the engine's data directory",
            )
            assert "Connections" in screen
            if round_ == "quit":
                tmux.run("send-keys", "-t", "wc", "q")
                screen = tmux.wait_until(lambda s: "EXITED:" in s, EXIT_TIMEOUT, "the exit")
                assert "EXITED:0" in screen, screen
            tmux.kill()  # the second round: the terminal goes away under the console
            time.sleep(0.5)
            assert engine.poll() is None, f"the engine stopped when the console did ({round_})"
    finally:
        engine.terminate()
        assert engine.wait(timeout=30) == 0


CLOCK = re.compile(r"\b\d\d:\d\d:\d\d\b")


def _line_after(screen: str, header: str) -> str:
    """The line below the one holding ``header`` (a panel's first row of content)."""
    lines = screen.splitlines()
    for number, line in enumerate(lines[:-1]):
        if header in line:
            return lines[number + 1]
    raise AssertionError(f"{header!r} not on the screen:\n{screen}")


def test_every_panel_reads_at_80x24_over_the_simulator(tmux: Tmux, tmp_path: Path) -> None:
    demo = shlex.join(
        [sys.executable, "-m", "wanderer_console", "demo", "--data-dir", str(tmp_path / "data")]
    )
    script = f"{demo}; echo EXITED:$?; exec sleep 120"
    tmux.run(
        "new-session", "-d", "-s", "wc", "-x", "80", "-y", "24",
        "-c", str(Path.cwd()), shlex.join(["sh", "-c", script]),
    )  # fmt: skip
    tmux.socket_path = Path(tmux.run("display-message", "-p", "#{socket_path}").strip())

    # Overview: connections, delivery (a target named by its map route), breakers.
    screen = tmux.wait_until(
        lambda s: (
            "killstream:systems" in s and "/primary" in s and ("discord:" in s or "esi:" in s)
        ),
        START_TIMEOUT,
        "the overview tab with a connection, a target and a breaker",
    )
    for title in ("1 Overview", "Connections", "Delivery", "Circuit breakers"):
        assert title in screen, screen
    assert "Quality" in screen  # not lost at 80 columns
    assert "connected" in _line_after(screen, "Name")
    assert "/primary" in screen
    assert re.search(r"(discord|esi):\S+\s+(closed|open|half-open)", screen), screen

    tmux.run("send-keys", "-t", "wc", "2")
    screen = tmux.wait_until(
        lambda s: "Recent activity" in s and bool(CLOCK.search(_line_after(s, "filter"))),
        EXIT_TIMEOUT,
        "the activity tab with a line",
    )

    tmux.run("send-keys", "-t", "wc", "3")
    screen = tmux.wait_until(
        lambda s: "Counters" in s and "Cache" in s, EXIT_TIMEOUT, "the counters tab"
    )
    assert re.search(r"Errors\s+\d+", _line_after(screen, "─ Counters")), screen
    assert "Namespace" in screen
    assert re.search(r"All (\d+%|-)", screen), screen

    tmux.run("send-keys", "-t", "wc", "4")
    screen = tmux.wait_until(
        lambda s: "Throughput" in s and "events/s" in s, EXIT_TIMEOUT, "the throughput tab"
    )
    assert "throughput (per second, last 10 min)" in screen

    tmux.run("send-keys", "-t", "wc", "q")
    screen = quit_demo(tmux)
    assert "EXITED:0" in screen, screen
