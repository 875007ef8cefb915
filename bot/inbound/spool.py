"""The local spool: verified WeChat deliveries kept on disk while the database cannot take them.

A delivery is acknowledged only once it is durable somewhere. When the database is down, locked or
too slow, the callback writes the delivery here and answers; the worker moves it into the database
later (bot.inbound.processing.replay_spool).

One file per delivery, maildir style: written to tmp/, fsync'd, renamed into new/ and the directory
fsync'd, so a crash leaves either the whole file or none. The name is a hash of (account, dedupe
key): a redelivery during the outage lands on the same file. Several web processes share the
directory. The nonce cache works here too while the database is out of reach: a marker per
(account, timestamp, nonce), created exclusively, holds the dedupe key the signature came with.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class Delivery:
    """A verified callback delivery, as stored in InboundDelivery (or the spool)."""

    account_id: int
    dedupe_key: str
    timestamp: int  # the signature's timestamp
    nonce: str
    body: str  # plain XML
    arrived_at: datetime


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:40]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.new, self.tmp = self.directory / "new", self.directory / "tmp"
        self.nonces, self.rejected = self.directory / "nonces", self.directory / "rejected"

    def _ensure(self) -> None:
        for d in (self.new, self.tmp, self.nonces, self.rejected):
            d.mkdir(parents=True, exist_ok=True)

    def nonce_fresh(self, delivery: Delivery) -> bool:
        """Record the delivery's (timestamp, nonce); False when it came before with another message."""
        self._ensure()
        marker = self.nonces / _digest(delivery.account_id, delivery.timestamp, delivery.nonce)
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return marker.read_text(encoding="utf-8") == delivery.dedupe_key
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(delivery.dedupe_key)
        return True

    def put(self, delivery: Delivery) -> None:
        """Write `delivery` durably (fsync'd) unless it is spooled already."""
        self._ensure()
        name = _digest(delivery.account_id, delivery.dedupe_key) + ".json"
        final = self.new / name
        if final.exists():
            return
        data = asdict(delivery) | {"arrived_at": delivery.arrived_at.isoformat()}
        tmp = self.tmp / f"{name}.{os.getpid()}"
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(self.new)

    def pending(self) -> list[Path]:
        """Spooled deliveries, oldest first."""
        if not self.new.is_dir():
            return []
        files = []
        for path in self.new.glob("*.json"):
            try:
                files.append((path.stat().st_mtime, path))
            except FileNotFoundError:  # another worker replayed it meanwhile
                continue
        return [path for _mtime, path in sorted(files)]

    @staticmethod
    def read(path: Path) -> Delivery:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Delivery(**(data | {"arrived_at": datetime.fromisoformat(data["arrived_at"])}))

    @staticmethod
    def remove(path: Path) -> None:
        path.unlink(missing_ok=True)

    def reject(self, path: Path) -> None:
        """Set a delivery aside for an admin to look at (a replayed signature), instead of storing it."""
        self._ensure()
        os.replace(path, self.rejected / path.name)

    def expire_nonces(self, older_than_s: float) -> None:
        """Drop nonce markers past the timestamp window: the database's nonce cache takes over."""
        if not self.nonces.is_dir():
            return
        limit = time.time() - older_than_s
        for marker in self.nonces.iterdir():
            try:
                if marker.stat().st_mtime < limit:
                    marker.unlink(missing_ok=True)
            except FileNotFoundError:
                continue
