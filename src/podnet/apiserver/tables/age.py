"""Ages as kubectl prints them (apimachinery's `duration.HumanDuration`): about
two significant figures, so a column of ages stays narrow and sorts by eye.

A Clock is the request's one `now`, so every row of a Table is aged against the
same instant and a test can pin it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

UNKNOWN = "<unknown>"  # kube-apiserver's cell for a missing timestamp


def human_duration(seconds: float) -> str:
    """`0s`..`119s`, `2m5s`..`9m59s`, `10m`..`179m`, `3h`..`7h59m`, `8h`..`47h`,
    `2d`..`7d23h`, `8d`..`729d`, `2y`..`7y364d`, then whole years. Up to a
    second in the future is clock skew (`0s`); more is `<invalid>`."""
    whole = int(seconds)  # toward zero, as Go's int(d.Seconds())
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        return _pair(minutes, "m", whole % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return _pair(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return _pair(days, "d", hours % 24, "h")
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        return _pair(days // 365, "y", days % 365, "d")
    return f"{days // 365}y"


def _pair(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big}{big_unit}{small}{small_unit}" if small else f"{big}{big_unit}"


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (`2026-12-07T17:09:54Z`, or a
    MicroTime with fractions); naive times are UTC, as the API's always are."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


@dataclass(frozen=True)
class Clock:
    """The instant a Table is made at, in seconds since the epoch."""

    now: float

    @classmethod
    def at(cls, now: datetime | float) -> Clock:
        if isinstance(now, datetime):
            return cls((now if now.tzinfo else now.replace(tzinfo=timezone.utc)).timestamp())
        return cls(float(now))

    def since(self, timestamp: str | None) -> str:
        """kubectl's `translateTimestampSince`: the age of a timestamp, `<unknown>` without one."""
        if not timestamp:
            return UNKNOWN
        try:
            return self.since_moment(parse_timestamp(timestamp))
        except ValueError:
            return "<invalid>"

    def since_moment(self, moment: float) -> str:
        return human_duration(self.now - moment)
