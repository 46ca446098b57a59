"""host-local's on-disk leases, compatible with the reference plugin, plus an index.

Layout (the reference's, so a node can switch either way):
    <dataDir>/<network>/<ip>                  "container-id\\r\\nifname"
    <dataDir>/<network>/last_reserved_ip.<N>   the last address handed out from range set N
    <dataDir>/<network>/lock                   flock'd around every change
The reference finds a container's leases by reading every file. We also keep
    <dataDir>/<network>/.podnet-index/<id>:<ifname>   its addresses, one per line
and trust the index only while the directory's mtime is the one recorded at our
last change; any other writer (the reference plugin) makes us rebuild it once.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from podnet.ipam.ranges import Address

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
_INDEX = ".podnet-index"
_SYNCED = ".synced"
_LAST_RESERVED = "last_reserved_ip."


def _owner(container_id: str, ifname: str) -> str:
    return f"{container_id}\r\n{ifname}"


def _parse_address(name: str) -> Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


class LeaseStore:
    def __init__(self, data_dir: str | Path, network: str) -> None:
        self.directory = Path(data_dir) / network
        self.directory.mkdir(parents=True, exist_ok=True)
        self._index = self.directory / _INDEX

    @contextmanager
    def locked(self) -> Iterator[LeaseStore]:
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o750)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self
        finally:
            os.close(fd)  # closing releases the flock

    # the reference's files

    def last_reserved(self, range_set: int) -> Address | None:
        try:
            return _parse_address((self.directory / f"{_LAST_RESERVED}{range_set}").read_text().strip())
        except OSError:
            return None

    def reserve(self, container_id: str, ifname: str, address: Address, range_set: int) -> bool:
        """Claim address for the container; False when it is already taken."""
        self._ensure_index()
        try:
            fd = os.open(self.directory / str(address), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as lease:
            lease.write(_owner(container_id, ifname).encode())
        (self.directory / f"{_LAST_RESERVED}{range_set}").write_text(str(address))
        self._index_add(container_id, ifname, address)
        return True

    def owner_of(self, address: Address) -> tuple[str, str] | None:
        try:
            text = (self.directory / str(address)).read_bytes().decode()
        except (OSError, UnicodeDecodeError):
            return None
        container_id, _, ifname = text.strip().partition("\r\n")
        return container_id, ifname

    def leases(self) -> dict[Address, tuple[str, str]]:
        """Every lease, read from disk: the slow path, for GC and index rebuilds."""
        found = {}
        for entry in os.scandir(self.directory):
            address = _parse_address(entry.name) if entry.is_file() else None
            if address is not None and (owner := self.owner_of(address)):
                found[address] = owner
        return found

    def release(self, address: Address) -> None:
        self._ensure_index()
        owner = self.owner_of(address)
        try:
            os.unlink(self.directory / str(address))
        except FileNotFoundError:
            pass
        if owner:
            self._index_remove(owner[0], owner[1], address)

    # lookups by container, through the index

    def find(self, container_id: str, ifname: str) -> list[Address]:
        """The container's leases; leases of older host-local versions name no
        interface, and count for any."""
        self._ensure_index()
        found = []
        for owner in ((container_id, ifname), (container_id, "")):
            try:
                text = self._index_path(*owner).read_text()
            except FileNotFoundError:
                continue
            found += [a for line in text.split() if (a := _parse_address(line)) and self.owner_of(a) == owner]
        return found

    def release_by_id(self, container_id: str, ifname: str) -> list[Address]:
        released = self.find(container_id, ifname)
        for address in released:
            self.release(address)
        return released

    def _index_path(self, container_id: str, ifname: str) -> Path:
        return self._index / f"{container_id}:{ifname}"

    def _index_add(self, container_id: str, ifname: str, address: Address) -> None:
        with open(self._index_path(container_id, ifname), "a") as entry:
            entry.write(f"{address}\n")
        self._mark_synced()

    def _index_remove(self, container_id: str, ifname: str, address: Address) -> None:
        path = self._index_path(container_id, ifname)
        try:
            remaining = [line for line in path.read_text().split() if line != str(address)]
        except FileNotFoundError:
            remaining = []
        if remaining:
            path.write_text("".join(f"{line}\n" for line in remaining))
        else:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        self._mark_synced()

    def _directory_version(self) -> str:
        return str(os.stat(self.directory).st_mtime_ns)

    def _mark_synced(self) -> None:
        (self._index / _SYNCED).write_text(self._directory_version())

    def _ensure_index(self) -> None:
        """Rebuild the index when someone else changed the directory since our last change."""
        try:
            if (self._index / _SYNCED).read_text() == self._directory_version():
                return
        except FileNotFoundError:
            pass
        try:
            self._index.mkdir()
        except OSError as err:
            if err.errno != errno.EEXIST:
                raise
        for entry in os.scandir(self._index):
            if entry.name != _SYNCED:
                os.unlink(entry.path)
        by_owner: dict[str, list[str]] = {}
        for address, (container_id, ifname) in self.leases().items():
            by_owner.setdefault(f"{container_id}:{ifname}", []).append(str(address))
        for name, addresses in by_owner.items():
            (self._index / name).write_text("".join(f"{a}\n" for a in addresses))
        self._mark_synced()
