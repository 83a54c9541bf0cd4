"""The `lediflow` command's side of the warm server: forward this command, or start and stop a server around
another command (`lediflow warm -- snakemake --cores all`). Light on imports: it runs before any stage does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lediflow.cli.warm import TRACE_ENV, WARM_ENV, protocol

START_TIMEOUT_S = 120.0  # the server imports torch, torch-fidelity and diffusers before it listens


def _trace(how: str, argv: list[str]) -> None:
    if os.environ.get(TRACE_ENV):
        with open(os.environ[TRACE_ENV], "a") as handle:
            handle.write(f"{how} {argv[0] if argv else ''}\n")


def forward(path: str, argv: list[str]) -> int | None:
    """Run `lediflow <argv>` in the warm server at `path`; its exit status, or None to run it here (no server
    listening there, or one whose import-time environment differs from this command's)."""
    if os.environ.get("TORCHELASTIC_RUN_ID"):  # a torchrun rank (multi-GPU training): torchrun manages it, cold
        _trace("cold (torchrun)", argv)
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        _trace("cold (no server)", argv)
        return None
    code = _forward(sock, path, argv)
    _trace("cold (refused)" if code is None else "warm", argv)
    return code


def _forward(sock: socket.socket, path: str, argv: list[str]) -> int | None:
    try:
        protocol.send_request(sock, argv, os.getcwd(), dict(os.environ), [0, 1, 2])
        kind, code = protocol.recv_status(sock)
    except KeyboardInterrupt:
        return 130  # closing the socket (below) makes the server stop the command
    except (OSError, ConnectionError):
        print(f"lediflow: error: the warm server at {path} stopped before the command finished; unset "
              f"{WARM_ENV} to run without it", file=sys.stderr)
        return 70
    finally:
        sock.close()
    if kind == protocol.REFUSED:
        return None
    return 128 - code if code < 0 else code  # killed by signal N: the 128 + N a shell reports for a cold one


def wrap(command: list[str]) -> int:
    """Start a server, run `command` with WARM_ENV pointing at it, stop the server; the command's exit status."""
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("lediflow: error: warm needs a command to run, e.g. `lediflow warm -- snakemake --cores all`",
              file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="lediflow-warm-"))
    path = folder / "server.sock"
    server = start_server(path)
    try:
        if server is None:
            print("lediflow: error: the warm server did not start; run the command without `lediflow warm`",
                  file=sys.stderr)
            return 70
        try:
            return subprocess.run(command, env={**os.environ, WARM_ENV: str(path)}).returncode
        except FileNotFoundError:
            print(f"lediflow: error: no command {command[0]!r}; check the command after `lediflow warm --`",
                  file=sys.stderr)
            return 127
        except KeyboardInterrupt:
            return 130
    finally:
        stop_server(server)
        path.unlink(missing_ok=True)
        folder.rmdir()


def start_server(path: Path, cwd: str | None = None) -> subprocess.Popen | None:
    """A warm server listening at `path`, or None (stopped) if it exits or is not listening within
    START_TIMEOUT_S."""
    server = subprocess.Popen([sys.executable, "-m", "lediflow.cli.warm.server", "--socket", str(path)],
                              cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not path.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            return None
        time.sleep(0.05)
    return server


def stop_server(server: subprocess.Popen | None) -> None:
    """Stop a server started by start_server (its forked commands go with it)."""
    if server is None:
        return
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
