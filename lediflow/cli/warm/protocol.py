"""The warm server's wire format: one request per connection, one reply.

Request: the command's argv, working directory and environment as JSON, with its stdin, stdout and stderr
passed as file descriptors (SCM_RIGHTS), so the forked command writes where a cold one would. Reply: the exit
status, or a refusal that tells the client to run the command itself.
"""

from __future__ import annotations

import json
import os
import socket
import struct

_LENGTH = struct.Struct("!Q")
_STATUS = struct.Struct("!ci")
EXITED, REFUSED = b"E", b"R"
# Read once, at interpreter start or when torch, huggingface_hub or diffusers is imported: a command whose
# values differ from the server's would not see its own, so the server refuses it and the client runs it cold.
# (lediflow reads its own LEDIFLOW_* variables when a stage runs, so those pass to the fork as they are.)
IMPORT_TIME_PREFIXES = ("HF_", "HUGGINGFACE", "TORCH", "PYTORCH", "CUDA", "DIFFUSERS", "XDG_CACHE_HOME", "PYTHON",
                        "LD_")
PER_COMMAND = frozenset({"LEDIFLOW_WARM", "OMP_NUM_THREADS", "MKL_NUM_THREADS"})  # applied in the forked child


def import_time_env(env: dict[str, str]) -> dict[str, str]:
    """The part of an environment that must match the server's for a forked command to behave as a cold one."""
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_PREFIXES) and k not in PER_COMMAND}


def send_request(sock: socket.socket, argv: list[str], cwd: str, env: dict[str, str], fds: list[int]) -> None:
    payload = json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode()
    socket.send_fds(sock, [_LENGTH.pack(len(payload))], fds)
    sock.sendall(payload)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            raise ConnectionError("the peer closed the connection mid-message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_request(sock: socket.socket) -> tuple[dict, list[int]]:
    head, fds, _, _ = socket.recv_fds(sock, _LENGTH.size, 3)
    if len(head) != _LENGTH.size or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise ConnectionError("malformed warm request")
    (size,) = _LENGTH.unpack(head)
    return json.loads(_recv_exactly(sock, size)), fds


def send_status(sock: socket.socket, kind: bytes, code: int = 0) -> None:
    sock.sendall(_STATUS.pack(kind, code))


def recv_status(sock: socket.socket) -> tuple[bytes, int]:
    kind, code = _STATUS.unpack(_recv_exactly(sock, _STATUS.size))
    return kind, code
