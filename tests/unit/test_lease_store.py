"""host-local's lease files: the reference's format, and an index that finds a
container's lease without reading every file."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from podnet.ipam.lease_store import LeaseStore

A = ipaddress.ip_address


def test_files_are_the_references(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path, "net")
    with store.locked():
        assert store.reserve("abc", "eth0", A("10.0.0.2"), 0)
        assert not store.reserve("other", "eth0", A("10.0.0.2"), 0)
    directory = tmp_path / "net"
    assert (directory / "10.0.0.2").read_bytes() == b"abc\r\neth0"
    assert (directory / "last_reserved_ip.0").read_text() == "10.0.0.2"
    assert (directory / "lock").exists()


def test_find_and_release_by_container(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path, "net")
    with store.locked():
        for i in range(10):
            store.reserve(f"c{i}", "eth0", A(f"10.0.0.{i + 2}"), 0)
        assert store.find("c3", "eth0") == [A("10.0.0.5")]
        assert store.find("c3", "eth1") == []
        assert store.release_by_id("c3", "eth0") == [A("10.0.0.5")]
        assert store.find("c3", "eth0") == [] and not (tmp_path / "net" / "10.0.0.5").exists()
        assert store.release_by_id("c3", "eth0") == []


def test_leases_written_by_the_reference_are_found(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path, "net")
    with store.locked():
        store.reserve("ours", "eth0", A("10.0.0.2"), 0)
    (tmp_path / "net" / "10.0.0.9").write_bytes(b"theirs\r\neth0")  # the reference plugin's write
    (tmp_path / "net" / "10.0.0.10").write_bytes(b"legacy")  # an older host-local's, with no ifname
    with store.locked():
        assert store.find("theirs", "eth0") == [A("10.0.0.9")]
        assert store.find("legacy", "eth0") == [A("10.0.0.10")]
        assert store.find("ours", "eth0") == [A("10.0.0.2")]


def test_a_stale_index_entry_is_not_trusted(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path, "net")
    with store.locked():
        store.reserve("a", "eth0", A("10.0.0.2"), 0)
    (tmp_path / "net" / "10.0.0.2").unlink()  # released behind our back
    with store.locked():
        assert store.find("a", "eth0") == []
