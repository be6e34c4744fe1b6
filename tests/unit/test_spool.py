from __future__ import annotations

from pathlib import Path

from rackd.bus.spool import Spool


def test_spool_keeps_order_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path, max_messages=100)
    for i in range(10):
        spool.append(f"event:{i}", "t/event", f"{i}".encode())
    first = spool.peek(3)
    assert [e.payload for e in first] == [b"0", b"1", b"2"]
    spool.remove(first[0].seq)
    spool.close()

    reopened = Spool(path, max_messages=100)
    assert len(reopened) == 9
    assert [e.payload for e in reopened.peek(100)] == [f"{i}".encode() for i in range(1, 10)]


def test_spool_ignores_a_key_it_already_holds(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_messages=100)
    spool.append("event:a", "t", b"1")
    spool.append("event:a", "t", b"1")
    assert len(spool) == 1


def test_full_spool_drops_oldest_and_says_how_many(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_messages=10)
    dropped = [spool.append(f"event:{i}", "t", f"{i}".encode()) for i in range(15)]
    assert dropped == [0] * 10 + [1] * 5
    assert len(spool) == 10
    assert [e.payload for e in spool.peek(100)] == [f"{i}".encode() for i in range(5, 15)]


def test_correlation_data_is_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_messages=10)
    spool.append("result:1", "reply/topic", b"{}", b"\x00\x01corr")
    (entry,) = spool.peek()
    assert entry.correlation == b"\x00\x01corr"
    assert entry.topic == "reply/topic"


def test_pinned_entries_survive_the_trim(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_messages=3)
    spool.append("event:0", "t", b"0")
    spool.append("pinned:notice", "t", b"notice")
    for i in range(1, 8):
        spool.append(f"event:{i}", "t", f"{i}".encode())
    assert [e.payload for e in spool.peek()] == [b"notice", b"6", b"7"]
