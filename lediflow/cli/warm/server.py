"""The warm server: import the heavy modules once, then fork one child per `lediflow` command.

    python -m lediflow.cli.warm.server --socket PATH      # `lediflow warm -- <command>` starts and stops it

One thread only: forking a process that runs other threads can leave a lock held in the child. The server
never touches CUDA (a CUDA context does not survive fork); each child initialises its own device, as a cold
process does. A client that goes away (Snakemake cancelling the job) takes its child's process group with it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import select
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Callable

from threadpoolctl import threadpool_limits

from lediflow.cli.warm import WARM_ENV, protocol

Dispatch = Callable[[list[str]], int]
# What a cold command spends its start-up importing (benchmarks/startup.py): the stages, torch-fidelity's
# Inception and the latent decoder's diffusers. Missing optional ones are skipped.
PRELOAD = ("torch", "lediflow.cli", "lediflow.pipeline.stages.sample", "lediflow.pipeline.stages.score",
           "lediflow.pipeline.stages.flow", "lediflow.pipeline.stages.prior", "lediflow.pipeline.stages.latents",
           "torch_fidelity", "diffusers")


def apply_thread_count(threads: int) -> None:
    """What OMP_NUM_THREADS sets at import in a cold process, set in the forked child: torch's intra-op pool, and
    the BLAS pools numpy and scipy loaded in the server (OpenBLAS sizes its pool once, when loaded)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    threadpool_limits(limits=threads)


def preload(modules: tuple[str, ...] = PRELOAD) -> list[str]:
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except ImportError:
            continue
    return loaded


def cli_dispatch(argv: list[str]) -> int:
    from lediflow.cli import main

    return main(argv)


def _run_child(request: dict, fds: list[int], dispatch: Dispatch, added: dict[str, str]) -> None:
    """In the forked child: become the command (its streams, folder, environment, threads), run it, exit."""
    code = 70
    try:
        os.setpgid(0, 0)  # its own group: the server stops it and anything it spawned together
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update({**added, **request["env"]})
        os.environ.pop(WARM_ENV, None)  # the command runs here; it must not forward itself again
        threads = request["env"].get("OMP_NUM_THREADS")
        if threads and threads.isdigit():
            apply_thread_count(int(threads))
        sys.argv = ["lediflow", *request["argv"]]
        try:
            code = dispatch(request["argv"])
        except SystemExit as exc:  # argparse's --help and usage errors exit, as they do cold
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code if isinstance(code, int) else 1)


class Server:
    """Accepts requests on a Unix socket and forks a child per command; reports each child's exit status."""

    def __init__(self, path: Path, dispatch: Dispatch = cli_dispatch, env_before_imports: dict | None = None) -> None:
        self.path, self.dispatch = Path(path), dispatch
        before = dict(os.environ) if env_before_imports is None else env_before_imports
        self.env = protocol.import_time_env(before)
        # what the imports set for themselves (torch: CUDA_MODULE_LOADING=LAZY), which a cold command's imports
        # would set in its own environment too
        self.added = {k: v for k, v in os.environ.items() if k not in before}
        self.children: dict[int, socket.socket] = {}
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.path.unlink(missing_ok=True)
        self.listener.bind(str(self.path))
        self.listener.listen(64)
        self.stopping = False

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        try:
            request, fds = protocol.recv_request(conn)
        except (OSError, ValueError):
            conn.close()
            return
        if protocol.import_time_env(request["env"]) != self.env:
            for fd in fds:
                os.close(fd)
            protocol.send_status(conn, protocol.REFUSED)
            conn.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self.listener.close()
            for other in self.children.values():
                other.close()
            conn.close()
            _run_child(request, fds, self.dispatch, self.added)
        for fd in fds:
            os.close(fd)
        conn.setblocking(False)
        self.children[pid] = conn

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is not None:
                try:
                    conn.setblocking(True)
                    protocol.send_status(conn, protocol.EXITED, os.waitstatus_to_exitcode(status))
                except OSError:
                    pass  # the client is gone; nobody to tell
                conn.close()

    def _drop_abandoned(self, readable: list) -> None:
        """A readable client socket means EOF: its client died, so its command is stopped."""
        for pid, conn in list(self.children.items()):
            if conn in readable:
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def serve_forever(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        try:
            while not self.stopping:
                readable, _, _ = select.select([self.listener, *self.children.values()], [], [], 0.05)
                if self.listener in readable:
                    self._accept()
                self._drop_abandoned(readable)
                self._reap()
        finally:
            for pid in list(self.children):
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            self.listener.close()
            self.path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="lediflow's warm server (started by `lediflow warm`)")
    parser.add_argument("--socket", required=True, type=Path)
    args = parser.parse_args(argv)
    before = dict(os.environ)
    preload()
    Server(args.socket, env_before_imports=before).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
