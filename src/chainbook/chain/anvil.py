"""Start and stop a local anvil node (tests and the gas benchmark).

The binary comes from the pinned npm package ``@foundry-rs/anvil-linux-amd64``
(``bash scripts/build-contracts.sh`` runs ``npm ci`` in contracts/).  Each node listens on
a free loopback port and is killed by ``stop``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CANDIDATES = (
    ROOT / "contracts" / "node_modules" / ".bin" / "anvil",
    ROOT / "contracts" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil",
)
ANVIL_CHAIN_ID = 31337
# anvil's first default dev account (public test key, funded with 10,000 ether)
DEV_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def find_anvil() -> Path | None:
    """Path of the anvil binary (``CHAINBOOK_ANVIL`` overrides), or None if absent."""
    override = os.environ.get("CHAINBOOK_ANVIL")
    paths = (Path(override),) if override else CANDIDATES
    for p in paths:
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Anvil:
    """A running anvil process; ``url`` is its JSON-RPC endpoint."""

    def __init__(self, binary: Path, chain_id: int = ANVIL_CHAIN_ID,
                 extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.chain_id = chain_id
        self.proc = subprocess.Popen(
            [str(binary), "--host", "127.0.0.1", "--port", str(self.port),
             "--chain-id", str(chain_id), "--silent", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId",
                           "params": []}).encode()
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"anvil exited with {self.proc.returncode}: {err}")
            try:
                req = urllib.request.Request(self.url, body,
                                             {"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"anvil did not answer on {self.url}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Kill the node and wait for it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()

    def __enter__(self) -> Anvil:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
