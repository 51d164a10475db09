"""Start ``chainbook serve`` as a child process, wait until it listens, and stop it.

For the tests and benchmarks that need a real server: ``spawn_serve`` returns once the
child has written ``<data>/serve.json`` naming its own pid (``{"host", "port", "pid"}``);
``stop_process`` stops it with SIGTERM, then SIGKILL if it does not exit in time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chainbook.service.cli_commands import SERVE_FILE

TAIL_CHARS = 4000  # how much of each log an error message quotes


def spawn_serve(args: Sequence[str], data: Path, log: Path | tuple[Path, Path], *,
                env: Mapping[str, str] | None = None, python_args: Sequence[str] = (),
                timeout: float = 60.0) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Run ``python [python_args] -m chainbook serve --data DATA [args]``; wait for it.

    ``log``: one file for stdout and stderr, or a (stdout, stderr) pair; appended to.
    ``env`` adds variables to this process's environment (and ``PYTHONUNBUFFERED=1``);
    ``python_args`` go before ``-m chainbook`` (e.g. ``-m cProfile -o FILE``). A stale
    serve.json is removed first. Returns the child and its serve.json. If the child exits,
    or has not listened after ``timeout`` seconds, it is killed and RuntimeError raised,
    quoting the end of the log."""
    out_path, err_path = (log, log) if isinstance(log, Path) else log
    info = data / SERVE_FILE
    info.unlink(missing_ok=True)  # a previous run's file must not be taken for this one
    cmd = [sys.executable, *python_args, "-m", "chainbook", "serve", "--data", str(data),
           *args]
    with open(out_path, "ab") as out, open(err_path, "ab") as err:
        proc = subprocess.Popen(cmd, stdout=out,
                                stderr=subprocess.STDOUT if err_path == out_path else err,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"chainbook serve exited with status {proc.returncode}; "
                                   + _tails(out_path, err_path))
            try:
                meta: dict[str, Any] = json.loads(info.read_text())
                if meta.get("pid") == proc.pid:
                    return proc, meta
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"chainbook serve wrote no {info} within {timeout} s; "
                                   + _tails(out_path, err_path))
            time.sleep(0.05)
    except BaseException:
        _kill(proc)  # no child outlives a failed start
        raise


def stop_process(proc: subprocess.Popen[bytes], timeout: float,
                 sig: int = signal.SIGTERM) -> int:
    """Send ``sig`` (SIGTERM), wait ``timeout`` s, then SIGKILL; return the exit status.

    The status is negative when a signal ended the process (-9 after the SIGKILL)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
    return proc.returncode


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _tails(*paths: Path) -> str:
    """Each distinct log's path and last TAIL_CHARS characters."""
    parts = []
    for path in dict.fromkeys(paths):
        try:
            text = path.read_text(errors="replace")[-TAIL_CHARS:]
        except OSError as exc:
            text = f"(unreadable: {exc})"
        parts.append(f"log {path}:\n{text}")
    return "\n".join(parts)
