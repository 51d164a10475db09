"""``python -m chainbook.chain proof`` and ``verify-trade`` against anvil."""

from __future__ import annotations

import json

from chainfix import trades

from chainbook.chain.cli import main
from chainbook.chain.settler import ChainSettler
from chainbook.chain.store import ChainStore


def test_proof_and_verify_trade_commands(client, anvil, tmp_path, capsys):
    store = ChainStore.in_data_dir(tmp_path)
    s = ChainSettler(client, store, confirmations=2, max_trades=8)
    s.add_trades(trades(20))
    s.flush()
    s.step()
    client.mine(2)
    s.step()
    store.close()
    common = ["--rpc", anvil.url, "--chain-id", "31337", "--confirmations", "2"]

    assert main(["proof", "--data", str(tmp_path), "--trade-id", "11"]) == 0
    proof = json.loads(capsys.readouterr().out)
    assert proof["batchId"] == 2 and proof["leafIndex"] == 2 and proof["state"] == "ANCHORED"
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    assert main(["verify-trade", "--proof", str(path), *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["confirmations"] >= 2

    assert main(["verify-trade", "--trade-id", "20", "--data", str(tmp_path), *common]) == 0
    capsys.readouterr()

    proof["trade"]["qty"] += 1  # a tampered trade
    path.write_text(json.dumps(proof))
    assert main(["verify-trade", "--proof", str(path), *common]) == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["ok"] and out["checks"]["leaf_encoding"] is False

    wrong_chain = ["--rpc", anvil.url, "--chain-id", "1"]
    assert main(["verify-trade", "--proof", str(path), *wrong_chain]) == 2
    assert "chain 31337" in capsys.readouterr().err
    assert main(["proof", "--data", str(tmp_path / "nope"), "--trade-id", "1"]) == 2
    assert main(["verify-trade", "--trade-id", "99", "--data", str(tmp_path), *common]) == 1
