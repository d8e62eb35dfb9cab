"""``wanderer-console attach`` and ``control token`` from the command line: refusals that say
what to do, and the token shown once and stored hashed."""

from __future__ import annotations

import argparse
import hashlib
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wanderer_console.attach import AttachError, backend_for, connect_backend
from wanderer_console.cli import main
from wanderer_console.control.server import SOCKET_NAME
from wanderer_console.control.token import TOKEN_FILE
from wanderer_console.server.serve import EmbeddedServer
from wanderer_console.store.lock import DataDirLock


def _args(**given: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "data_dir": None,
        "socket": None,
        "url": None,
        "token_file": None,
        "config": None,
    }
    values.update(given)
    return argparse.Namespace(**values)


async def test_no_engine_on_the_data_dir_says_how_to_start_one(tmp_path: Path) -> None:
    backend = backend_for(_args(data_dir=tmp_path))
    with pytest.raises(AttachError) as refused:
        await connect_backend(backend)
    await backend.aclose()
    message = str(refused.value)
    assert message.startswith("nothing to attach to")
    assert f"wanderer-console --no-ui --data-dir {tmp_path}" in message


async def test_an_engine_without_a_socket_is_named(tmp_path: Path) -> None:
    lock = DataDirLock(tmp_path)
    lock.acquire()
    try:
        backend = backend_for(_args(data_dir=tmp_path))
        with pytest.raises(AttachError, match=r"serves no\s+control socket") as refused:
            await connect_backend(backend)
        await backend.aclose()
        assert "PID" in str(refused.value)
    finally:
        lock.release()


def _stale_socket(path: Path) -> None:
    """What a crashed (killed) engine leaves: the socket file, nobody listening on it."""
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))
    leftover.close()


async def test_a_socket_left_by_a_crashed_engine_says_how_to_start_one(tmp_path: Path) -> None:
    _stale_socket(tmp_path / SOCKET_NAME)
    backend = backend_for(_args(data_dir=tmp_path))
    with pytest.raises(AttachError) as refused:
        await connect_backend(backend)
    await backend.aclose()
    message = str(refused.value)
    assert message.startswith("no engine is listening")
    assert f"wanderer-console --no-ui --data-dir {tmp_path}" in message


async def test_a_stale_socket_of_a_running_engine_without_one_names_the_engine(
    tmp_path: Path,
) -> None:
    """An engine restarted with `[control] socket = false` holds the data directory; the socket
    an earlier run left must not make the console say no engine runs."""
    _stale_socket(tmp_path / SOCKET_NAME)
    lock = DataDirLock(tmp_path)
    lock.acquire()
    try:
        backend = backend_for(_args(data_dir=tmp_path))
        with pytest.raises(AttachError, match=r"serves no\s+control socket") as refused:
            await connect_backend(backend)
        await backend.aclose()
        assert "PID" in str(refused.value)
    finally:
        lock.release()


def test_url_needs_a_token_file_and_the_socket_needs_none(tmp_path: Path) -> None:
    with pytest.raises(AttachError, match="--url needs --token-file"):
        backend_for(_args(url="http://127.0.0.1:8788"))
    with pytest.raises(AttachError, match="goes with --url"):
        backend_for(_args(socket=tmp_path / "s", token_file=tmp_path / "t"))
    with pytest.raises(AttachError, match="cannot read the token file"):
        backend_for(_args(url="http://127.0.0.1:8788", token_file=tmp_path / "missing"))


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfewcc_secretpart\x00",  # not text: a key file passed by mistake
        "wcc_secretpart\u00e9".encode(),  # not ASCII: no HTTP header can carry it
        b"wcc_secretpart\nsecond line\n",  # two lines: h11 quoted the header, token and all
        b"wcc_secretpart with space",
    ],
    ids=["binary", "non-ascii", "two-lines", "space"],
)
async def test_a_token_file_holding_no_token_says_so_without_showing_it(
    tmp_path: Path, content: bytes
) -> None:
    """Such a file raised a traceback, or reached the engine's address and came back as
    "Illegal header value b'Bearer wcc_…'": the secret on the operator's screen. Now the file
    is named, with what it must hold, and none of its content is shown."""

    async def anything(request: Request) -> Response:
        return JSONResponse({"error": "the token is not this engine's current one"}, 401)

    server = EmbeddedServer(
        Starlette(routes=[Route("/{path:path}", anything)]), host="127.0.0.1", port=0
    )
    await server.start()
    token_file = tmp_path / "token"
    token_file.write_bytes(content)
    token_file.chmod(0o600)

    async def attach() -> None:
        backend = backend_for(_args(url=server.url, token_file=token_file))
        try:
            await connect_backend(backend)
        finally:
            await backend.aclose()

    try:
        with pytest.raises(AttachError) as refused:
            await attach()
    finally:
        await server.stop()
    message = str(refused.value)
    assert message.startswith(f"the token file {token_file} does not hold a token")
    assert "wanderer-console control token" in message
    assert "secretpart" not in message


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",  # an unclosed IPv6 bracket: httpx raised InvalidURL, a traceback
        "http://127.0.0.1:99999",  # past the last port: an ExceptionGroup traceback
        "http://operator:secretpw@127.0.0.1:8788",  # echoed, password and all
        "localhost:8788",  # read as the scheme "localhost"
        "ftp://127.0.0.1:8788",
    ],
)
async def test_a_url_that_is_no_engine_address_says_what_to_give(tmp_path: Path, url: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("wcc_x\n")
    token_file.chmod(0o600)

    async def attach() -> None:
        backend = backend_for(_args(url=url, token_file=token_file))
        try:
            await connect_backend(backend)
        finally:
            await backend.aclose()

    with pytest.raises(AttachError) as refused:
        await attach()
    message = str(refused.value)
    assert "is not an engine address" in message
    assert "http://HOST:PORT" in message
    assert "secretpw" not in message


def test_control_token_is_shown_once_and_stored_hashed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["control", "token", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("wcc_")
    assert len(token) > 40
    assert "shown only now" in out.err
    stored = (tmp_path / TOKEN_FILE).read_text().strip()
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert main(["control", "token", "--data-dir", str(tmp_path)]) == 0
    assert (tmp_path / TOKEN_FILE).read_text().strip() != stored  # a new token replaces it


def test_control_token_for_a_data_dir_that_is_not_there_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped ``--data-dir`` names no engine: the token would be made where no engine looks
    (and the directory created). Refused, as the other commands refuse a data directory without
    their database, and nothing is created."""
    typo = tmp_path / "wanderer-consle"
    assert main(["control", "token", "--data-dir", str(typo)]) == 1
    out = capsys.readouterr()
    assert out.out == ""  # no token shown
    assert f"no engine data directory at {typo}" in out.err
    assert "--data-dir" in out.err
    assert not typo.exists()

    a_file = tmp_path / "config.toml"
    a_file.write_text("", encoding="utf-8")
    assert main(["control", "token", "--data-dir", str(a_file)]) == 1
    assert f"no engine data directory at {a_file}" in capsys.readouterr().err


def test_attach_without_a_terminal_says_to_use_ssh_t(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wanderer_console", "attach", "--data-dir", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "ssh -t" in done.stderr


async def test_a_config_that_does_not_load_is_named_not_the_default_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``attach --config FILE`` finds the engine through the file's data directory: while the
    file is broken, say that (and ask for --data-dir), not that no engine runs on the default
    data directory."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    config = tmp_path / "config.toml"
    config.write_text(f'[console]\ndata_dir = "{tmp_path}"\ndry_rn = true\n', encoding="utf-8")
    with pytest.raises(AttachError) as refused:
        backend_for(_args(config=config))
    message = str(refused.value)
    assert f"cannot read the configuration ({config}:3: console.dry_rn: unknown key" in message
    assert "pass --data-dir DIR" in message
