"""The UDP tick stream for real on loopback: multicast, gap detection and re-send.

Multicast on 127.0.0.1 (IP_MULTICAST_IF / IP_ADD_MEMBERSHIP on lo) is used when the
kernel allows it; otherwise the same path runs over unicast to 127.0.0.1 (the test says
which in its id via ``MODE``).
"""

from __future__ import annotations

import io
import socket
import struct
import threading
from collections.abc import Iterator

import pytest
from mdfeed import SPEC, Feed

from chainbook.domain.enums import Side
from chainbook.domain.events import Trade
from chainbook.domain.units import price_ticks
from chainbook.marketdata import ticks
from chainbook.marketdata.multicast import TickListener, TickSender, listen

GROUP = "239.255.42.1"


def _multicast_on_loopback() -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((GROUP, 0))
        mreq = struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton("127.0.0.1"))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        return True
    except OSError:
        return False
    finally:
        s.close()


MODE = GROUP if _multicast_on_loopback() else "127.0.0.1"  # unicast fallback


def _session() -> Feed:
    """Real engine events: resting orders, then takers walking the book."""
    feed = Feed()
    for i in range(4):
        feed.limit(2, Side.SELL, 10000 + i * 10, 2)
        feed.limit(3, Side.BUY, 9900 - i * 10, 1)
    feed.market(1, Side.BUY, 3)  # two trades on two levels
    feed.market(1, Side.SELL, 2)
    feed.trade(9950, 1)
    return feed


def _free_port() -> int:
    """A UDP port nobody uses on loopback right now."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


@pytest.fixture
def pair() -> Iterator[tuple[TickListener, TickSender]]:
    listener = TickListener(MODE, 0)
    sender = TickSender(MODE, listener.port)
    listener.resend_addr = sender.resend_address
    yield listener, sender
    sender.close()
    listener.close()


def test_stream_content_and_contiguous_sequence(pair) -> None:
    listener, sender = pair
    feed = _session()
    sender.on_commit(feed.history)
    got = listener.run(count=sender.seq, timeout=3)
    assert [t.seq for t in got] == list(range(1, sender.seq + 1))
    trades = [e for ap in feed.history for e in ap.events if isinstance(e, Trade)]
    ticks_t = [t for t in got if isinstance(t, ticks.TradeTick)]
    assert [(t.trade_id, t.price, t.qty, t.taker_side, t.symbol) for t in ticks_t] == [
        (e.trade_id, e.price, e.qty, e.taker_side, "BTCUSDT") for e in trades]
    bbos = [t for t in got if isinstance(t, ticks.BboTick)]
    assert (bbos[0].bid, bbos[0].bid_qty, bbos[0].ask, bbos[0].ask_qty) == (0, 0, 10000, 2)
    final = feed.md.book_ticker("BTCUSDT")
    assert (bbos[-1].bid, bbos[-1].ask) == (price_ticks(SPEC, final["bidPrice"]),
                                            price_ticks(SPEC, final["askPrice"]))
    # one BBO per command that moved the top, none for the others
    assert len(bbos) == len({t.seq for t in bbos}) and len(got) == len(trades) + len(bbos)
    assert listener.lost == [] and sender.resent == 0


def test_the_core_thread_never_waits_on_the_socket(pair) -> None:
    _, sender = pair
    assert sender.sock.getblocking() is False  # a full buffer is a send error, not a wait


def test_dropped_datagrams_are_refetched(pair) -> None:
    listener, sender = pair
    out = io.StringIO()
    listener.out = out
    sender.drop = lambda seq: seq in (3, 4, 7)
    feed = _session()
    sender.on_commit(feed.history)
    n = sender.seq
    got = listener.run(count=n, timeout=3)
    assert sorted(t.seq for t in got) == list(range(1, n + 1))
    assert [t.seq for t in got].index(3) > [t.seq for t in got].index(5)  # came late
    assert sender.resent == 3 and listener.lost == []
    text = out.getvalue()
    assert "gap 3..4 detected" in text and "gap 7..7 detected" in text
    assert text.count("(resent)") == 3


def test_a_gap_older_than_the_ring_is_reported_not_available() -> None:
    listener = TickListener(MODE, 0)
    sender = TickSender(MODE, listener.port, history=4)
    listener.resend_addr = sender.resend_address
    try:
        sender.drop = lambda seq: seq == 2
        feed = _session()
        sender.on_commit(feed.history)
        n = sender.seq
        assert n > 6  # seq 2 has left the 4-datagram ring by the time it is asked for
        got = listener.run(count=n - 1, timeout=3)
        listener.run(count=n, timeout=0.5)  # let the NOT_AVAILABLE reply arrive
        assert 2 not in {t.seq for t in got} and listener.lost == [2]
        [na] = listener.unavailable
        assert (na.from_seq, na.count, na.oldest, na.newest) == (2, 1, n - 3, n)
    finally:
        sender.close()
        listener.close()


def test_replay_follows_the_book_without_sending(pair) -> None:
    listener, sender = pair
    feed = _session()
    sender.replay(feed.history)
    assert sender.seq == 0
    feed.limit(3, Side.BUY, 9960, 4)  # a new best bid on top of the replayed book
    sender.on_commit(feed.history[-1:])
    [bbo] = listener.run(count=1, timeout=3)
    top = feed.md.book_ticker("BTCUSDT")
    assert isinstance(bbo, ticks.BboTick) and bbo.seq == 1
    assert (bbo.bid, bbo.bid_qty, bbo.ask) == (9960, 4, price_ticks(SPEC, top["askPrice"]))


def test_resend_replies_mix_held_and_gone() -> None:
    sender = TickSender(MODE, 9, history=3)  # port 9 (discard): nobody listens
    try:
        sender.drop = lambda seq: True
        feed = _session()
        sender.on_commit(feed.history)
        n = sender.seq
        replies = [ticks.decode(r) for r in sender.resend_replies(n - 4, 6)]
        assert replies[0] == ticks.NotAvailable(n - 4, 2, n - 2, n)
        assert [r.seq for r in replies[1:4]] == [n - 2, n - 1, n]
        assert replies[4] == ticks.NotAvailable(n + 1, 1, n - 2, n)
        assert sender.resend_replies(n - 1, 0) == []
    finally:
        sender.close()


def test_listen_prints_lines_and_catches_up_from_seq_1() -> None:
    port = _free_port()
    sender = TickSender(MODE, port)
    out = io.StringIO()
    feed = _session()
    sender.on_commit(feed.history[:-1])  # sent before the listener exists: lost to it
    early = sender.seq
    result: list[list[ticks.Tick]] = []
    t = threading.Thread(target=lambda: result.append(listen(
        MODE, port, sender.resend_address, count=early + 3, out=out, timeout=3,
        from_seq=1)))
    t.start()
    try:
        for _ in range(50):  # keep trading until the listener has caught up
            if not t.is_alive():
                break
            sender.on_commit([feed.trade(9950, 1)])
            t.join(0.05)
        t.join(5)
    finally:
        sender.close()
    [got] = result
    assert sorted(x.seq for x in got)[: early + 3] == list(range(1, early + 4))
    lines = out.getvalue().splitlines()
    assert any(" BTCUSDT TRADE id=1 price=10000 qty=2 taker=BUY" in ln for ln in lines)
    assert any("BBO bid=0x0 ask=10000x2" in ln for ln in lines)


def test_format_round_trip_and_rejects() -> None:
    name = ticks.encode_symbol("BTCUSDT")
    data = ticks.pack_trade(7, 123, name, 5, 10000, 3, 1)
    assert len(data) == ticks.TRADE_S.size == 61
    assert ticks.decode(data) == ticks.TradeTick(7, 123, "BTCUSDT", 5, 10000, 3, 1)
    assert ticks.seq_of(data) == 7
    bbo = ticks.pack_bbo(8, 9, name, (1, 2, 3, 4))
    assert len(bbo) == 68 and ticks.decode(bbo) == ticks.BboTick(8, 9, "BTCUSDT", 1, 2, 3, 4)
    assert ticks.unpack_request(ticks.pack_request(3, 2)) == (3, 2)
    for bad in (b"", b"XX\x01\x01" + data[4:], data[:-1], b"CB\x02" + data[3:]):
        with pytest.raises(ticks.FormatError):
            ticks.decode(bad)
    with pytest.raises(ticks.FormatError):
        ticks.encode_symbol("A" * 17)


def test_a_gap_of_thousands_is_filled_in_paced_rounds(pair) -> None:
    """3,000 datagrams lost at once, all still in the sender's ring: asked for in rounds
    of at most ROUND, so the replies never overflow the listener's receive buffer."""
    listener, sender = pair
    feed = _session()
    for _ in range(1600):
        feed.trade(9950, 1)
    sender.drop = lambda seq: 2 <= seq <= 3001
    sender.on_commit(feed.history)
    n = sender.seq
    assert n > 3100
    got = listener.run(count=n, timeout=5)
    assert sorted(t.seq for t in got) == list(range(1, n + 1))
    # every one came back; a round slower than RETRY_S (a loaded machine) is asked again
    assert listener.lost == [] and 3000 <= sender.resent < 2 * 3000


def test_a_restarted_sender_is_followed_not_taken_for_duplicates() -> None:
    """A server restart starts the sequence again at 1 with later timestamps: the
    listener says so and goes on printing (it used to drop everything as duplicates)."""
    port = _free_port()
    listener = TickListener(MODE, port)
    out = io.StringIO()
    listener.out = out
    first = TickSender(MODE, port)
    listener.resend_addr = first.resend_address
    feed = _session()
    try:
        first.on_commit(feed.history)
        n = first.seq
        assert len(listener.run(count=n, timeout=3)) == n
    finally:
        first.close()
    second = TickSender(MODE, port)  # the restarted server
    listener.resend_addr = second.resend_address
    try:
        later = [feed.trade(9950, 1, at_ms=feed.now_ms + 1000) for _ in range(3)]
        second.on_commit(later)
        got = listener.run(count=n + second.seq, timeout=3)
    finally:
        second.close()
        listener.close()
    assert [t.seq for t in got[n:]] == list(range(1, second.seq + 1))
    assert listener.restarts == 1 and listener.lost == []
    assert "sender restarted: sequence reset at 1" in out.getvalue()
