"""What the headless engine leaves unimported: its idle memory is mostly the modules it loads."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_headless_engine_does_not_load_httpx_command_line_client() -> None:
    # httpx imports its CLI (rich, pygments) on every import unless told it is absent: about
    # 3.5 MB of the engine's idle RSS (bench peer). Textual is the TUI's alone.
    code = (
        "import sys, wanderer_console.cli, wanderer_console.launch, wanderer_console.runtime;"
        "import httpx;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'pygments', 'textual'}));"
        "print(callable(httpx.main), sys.modules.get('httpx._main'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == ["[]", "True None"]
