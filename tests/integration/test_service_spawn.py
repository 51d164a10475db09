"""``chainbook.service.spawn``: start a real ``chainbook serve``, wait for it, stop it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from chainbook.service.spawn import spawn_serve, stop_process


def pids_naming(text: str) -> list[str]:
    """The pids whose command line contains ``text`` (a zombie's is empty)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if text.encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
    return found


def test_spawn_serve_waits_for_its_own_serve_json_and_stop_returns_0(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # a previous run's file, naming another pid and port, must not be taken for this one
    (data / "serve.json").write_text(json.dumps({"host": "127.0.0.1", "port": 1,
                                                 "pid": os.getpid()}))
    log = tmp_path / "serve.log"
    proc, meta = spawn_serve(["--demo", "--host", "127.0.0.1", "--port", "0"], data, log)
    try:
        assert proc.poll() is None
        assert meta["pid"] == proc.pid and meta["host"] == "127.0.0.1"
        assert meta["port"] not in (0, 1)
        r = httpx.get(f"http://127.0.0.1:{meta['port']}/api/v3/ping", timeout=10)
        assert r.status_code == 200 and r.json() == {}
    finally:
        code = stop_process(proc, 30)
    assert code == 0, log.read_text(errors="replace")
    assert not (data / "serve.json").exists()
    assert f"chainbook serving on http://127.0.0.1:{meta['port']}" in log.read_text()


def test_spawn_serve_raises_with_the_log_when_serve_exits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    missing = tmp_path / "no-such.toml"
    with pytest.raises(RuntimeError) as info:
        spawn_serve(["--demo", "--config", str(missing), "--port", "0"], data, (out, err))
    message = str(info.value)
    assert "exited with status 2" in message
    assert f"log {err}" in message and f"{missing}: cannot read" in message
    assert f"{missing}: cannot read" in err.read_text() and out.read_text() == ""


def test_spawn_serve_kills_a_server_that_does_not_listen_in_time(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "serve.log"
    with pytest.raises(RuntimeError, match=r"wrote no .*serve\.json within 0\.01 s") as info:
        spawn_serve(["--demo", "--port", "0"], data, log, timeout=0.01)
    assert f"log {log}" in str(info.value)
    assert pids_naming(str(data)) == []  # the child was killed and reaped


def test_spawn_serve_runs_python_args_and_env(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "serve.log"
    # the interpreter arguments go before "-m chainbook": -c makes that a plain script that
    # prints its argv and an env variable, then exits (so the start fails, quoting them)
    script = "import os, sys; print('argv', sys.argv[1:], os.environ['SPAWN_PROBE'])"
    with pytest.raises(RuntimeError, match="exited with status 0") as info:
        spawn_serve(["--port", "0"], data, log, env={"SPAWN_PROBE": "probe-7"},
                    python_args=["-c", script])
    line = f"argv ['-m', 'chainbook', 'serve', '--data', '{data}', '--port', '0'] probe-7"
    assert line in str(info.value)


def test_stop_process_kills_a_process_that_ignores_sigterm() -> None:
    script = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "print('ready', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        assert stop_process(proc, 0.5) == -9
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert stop_process(proc, 0.5) == -9  # already ended: its status, nothing sent
