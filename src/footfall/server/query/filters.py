"""The filters every report accepts: a date range, version, country, environment, CI.

`Filters.from_params` reads them from query parameters or CLI options and refuses
bad values with a clear UsageError; `Filters.where` is the only place they become
SQL, always as named parameters.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from footfall.server.errors import UsageError

MAX_DAYS = 3660
MAX_DAYS_DIGITS = 6  # longer digit strings are out of range without being parsed
EARLIEST = dt.date(1970, 1, 1)  # dates a filter may name: far from datetime's limits either way
LATEST = dt.date(2999, 12, 31)
CI_CHOICES = ("include", "exclude", "only")
CONTAINERS = ("docker", "podman", "kubernetes", "none")


def today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


@dataclasses.dataclass(frozen=True)
class Filters:
    start: dt.date
    end: dt.date  # inclusive
    version: str | None = None
    country: str | None = None
    ci: str = "include"
    container: str | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Filters:
        """The same filters over the period of the same length just before."""
        return dataclasses.replace(
            self, start=self.start - dt.timedelta(days=self.days), end=self.start - dt.timedelta(days=1)
        )

    @classmethod
    def from_params(cls, params: Mapping[str, Any], default_days: int = 30) -> Filters:
        def text(name: str) -> str | None:
            value = params.get(name)
            return None if value in (None, "") else str(value)

        end = _date(text("end"), "end") or today()
        days = text("days")
        start = _date(text("start"), "start")
        if start is None:
            count = parse_days(days, default_days)
            start = end - dt.timedelta(days=count - 1)
            if start < EARLIEST:
                raise UsageError(f"the range must start on or after {EARLIEST.isoformat()}")
        if start > end:
            raise UsageError("start must not be after end")
        if (end - start).days >= MAX_DAYS:
            raise UsageError(f"a range is at most {MAX_DAYS} days")
        version, country = text("version"), text("country")
        if version is not None and not re.fullmatch(r"[\w.+-]{1,64}", version):
            raise UsageError("version must be a version string such as 1.4.2")
        if country is not None:
            country = country.upper()
            if not re.fullmatch(r"[A-Z]{2}", country):
                raise UsageError("country must be a two-letter code such as DE")
        ci = text("ci") or "include"
        if ci not in CI_CHOICES:
            raise UsageError(f"ci must be one of {', '.join(CI_CHOICES)}")
        container = text("container")
        if container is not None and container not in CONTAINERS:
            raise UsageError(f"container must be one of {', '.join(CONTAINERS)}")
        return cls(start, end, version, country, ci, container)

    def where(self, app: str) -> tuple[str, dict[str, Any]]:
        clauses = ["app = $app", "time >= $start", "time < $end"]
        params: dict[str, Any] = {
            "app": app,
            "start": dt.datetime.combine(self.start, dt.time()),
            "end": dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time()),
        }
        if self.version:
            clauses.append("app_version = $version")
            params["version"] = self.version
        if self.country:
            clauses.append("country = $country")
            params["country"] = self.country
        if self.ci == "exclude":
            clauses.append("ci = ''")
        elif self.ci == "only":
            clauses.append("ci <> ''")
        if self.container:
            clauses.append("container = $container")
            params["container"] = "" if self.container == "none" else self.container
        return " AND ".join(clauses), params

    def as_params(self) -> dict[str, str]:
        """The filters as query parameters, for links that keep them."""
        params = {"start": self.start.isoformat(), "end": self.end.isoformat(), "ci": self.ci}
        for name in ("version", "country", "container"):
            value = getattr(self, name)
            if value:
                params[name] = value
        return params


def parse_days(value: str | None, default: int) -> int:
    """A day count from a query parameter: ASCII digits only, 1 to MAX_DAYS.

    `str.isdigit()` alone is not enough: it is True for "²", which `int()` refuses, and
    `int()` of thousands of digits is refused too; the length check comes first.
    """
    if value is None or value == "":
        count = default
    elif value.isascii() and value.isdigit() and len(value) <= MAX_DAYS_DIGITS:
        count = int(value)
    elif value.isascii() and value.isdigit():
        count = MAX_DAYS + 1  # a long run of digits: out of range, without parsing it
    else:
        raise UsageError("days must be a whole number")
    if not 1 <= count <= MAX_DAYS:
        raise UsageError(f"days must be between 1 and {MAX_DAYS}")
    return count


def _date(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        moment = dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{name} must be a date such as 2026-11-28") from None
    if not EARLIEST <= moment <= LATEST:
        # Reports step a day past the end and a whole range before the start; dates near
        # 0001-01-01 or 9999-12-31 would overflow there.
        raise UsageError(f"{name} must be between {EARLIEST.isoformat()} and {LATEST.isoformat()}")
    return moment
