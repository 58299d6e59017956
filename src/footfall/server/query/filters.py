"""The filters every report accepts: a date range, version, country, environment, CI,
and any number of property filters (`event.property=value`).

`Filters.from_params` reads them from query parameters or CLI options and refuses
bad values with a clear UsageError; `Filters.where` is the only place they become
SQL, always as named parameters.

Days are the app's days: `timezone` (an IANA name, UTC by default) says where a day
starts. The store keeps UTC; `where` turns the local range into UTC instants, and the
reports bucket by `local_time(filters)`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from footfall.server.errors import UsageError

if TYPE_CHECKING:
    from footfall.server.query.dialect import Dialect

MAX_DAYS = 3660
MAX_DAYS_DIGITS = 6  # longer digit strings are out of range without being parsed
EARLIEST = dt.date(1970, 1, 1)  # dates a filter may name: far from datetime's limits either way
LATEST = dt.date(2999, 12, 31)
CI_CHOICES = ("include", "exclude", "only")
CONTAINERS = ("docker", "podman", "kubernetes", "none")
MAX_PROPERTY_FILTERS = 5
PROPERTY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")  # an event or property name a filter may name
MAX_FILTER_VALUE_CHARS = 200
UTC = "UTC"


def today(timezone: str = UTC) -> dt.date:
    """Today in the given zone (an app's days start at its own midnight)."""
    return dt.datetime.now(zone(timezone)).date()


def zone(name: str) -> dt.tzinfo:
    if name == UTC:
        return dt.timezone.utc
    return zoneinfo.ZoneInfo(name)


@functools.cache
def known_timezones() -> frozenset[str]:
    """The IANA names a report may use: zoneinfo's list, less the system's own aliases
    (`localtime`, `posixrules`, `posix/...`, `right/...`), which the store's engine does not know."""
    return frozenset(
        name
        for name in zoneinfo.available_timezones()
        if name not in ("localtime", "posixrules", "Factory") and not name.startswith(("posix/", "right/"))
    )


def check_timezone(name: str) -> str:
    """An IANA time zone name such as Europe/Berlin, or a clear error."""
    if name == UTC:
        return name
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+/-]{0,63}", name) or name not in known_timezones():
        raise UsageError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC")
    return name


@dataclasses.dataclass(frozen=True)
class PropertyFilter:
    """`event.property=value`: only events named `event` whose property `property` is `value`."""

    event: str
    name: str
    value: str

    def __str__(self) -> str:
        return f"{self.event}.{self.name}={self.value}"

    @classmethod
    def parse(cls, text: str) -> PropertyFilter:
        target, equals, value = text.partition("=")
        event, dot, name = target.partition(".")
        if not equals or not dot:
            raise UsageError(f"a property filter is event.property=value, such as export.format=csv, not {text!r}")
        for part in (event, name):
            if not PROPERTY_NAME.fullmatch(part):
                raise UsageError(f"{part!r} in a property filter is not an event or property name")
        if len(value) > MAX_FILTER_VALUE_CHARS:
            raise UsageError(f"a property filter's value is at most {MAX_FILTER_VALUE_CHARS} characters")
        return cls(event, name, value)


@dataclasses.dataclass(frozen=True)
class Filters:
    start: dt.date
    end: dt.date  # inclusive
    version: str | None = None
    country: str | None = None
    ci: str = "include"
    container: str | None = None
    properties: tuple[PropertyFilter, ...] = ()
    timezone: str = UTC

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Filters:
        """The same filters over the period of the same length just before."""
        return dataclasses.replace(
            self, start=self.start - dt.timedelta(days=self.days), end=self.start - dt.timedelta(days=1)
        )

    @classmethod
    def from_params(cls, params: Mapping[str, Any], default_days: int = 30, timezone: str = UTC) -> Filters:
        """The filters in query parameters or CLI options; `timezone` is the app's (not a parameter)."""

        def text(name: str) -> str | None:
            value = params.get(name)
            return None if value in (None, "") else str(value)

        end = _date(text("end"), "end") or today(timezone)
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
        properties = tuple(PropertyFilter.parse(item) for item in _all(params, "where"))
        if len(properties) > MAX_PROPERTY_FILTERS:
            raise UsageError(f"at most {MAX_PROPERTY_FILTERS} property filters")
        return cls(start, end, version, country, ci, container, properties, check_timezone(timezone))

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """The range as UTC instants (naive, like the store's `time`): local midnight of start to after end."""
        local = zone(self.timezone)

        def utc(day: dt.date) -> dt.datetime:
            moment = dt.datetime.combine(day, dt.time(), tzinfo=local)
            return moment.astimezone(dt.timezone.utc).replace(tzinfo=None)

        return utc(self.start), utc(self.end + dt.timedelta(days=1))

    def where(self, app: str, dialect: Dialect | None = None) -> tuple[str, dict[str, Any]]:
        """The filters as one SQL condition on `events` and its named parameters, in `dialect`
        (DuckDB's by default)."""
        from footfall.server.query.dialect import DUCKDB  # the dialect module imports this one

        dialect = dialect or DUCKDB
        clauses = ["app = $app", "time >= $start", "time < $end"]
        start, end = self.bounds()
        params: dict[str, Any] = {"app": app, "start": start, "end": end}
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
        for i, item in enumerate(self.properties):
            # A property filter keeps the events of that name whose property has that value
            # (as text: 3 matches the number 3 and the string "3").
            clauses.append(f"name = $where_event_{i}")
            clauses.append(f"{dialect.prop_text(f'$where_path_{i}')} = $where_value_{i}")
            params[f"where_event_{i}"] = item.event
            params[f"where_path_{i}"] = dialect.key_param(item.name)
            params[f"where_value_{i}"] = item.value
        return " AND ".join(clauses), params

    def as_params(self) -> dict[str, str]:
        """The filters as query parameters, for links that keep them."""
        params = {"start": self.start.isoformat(), "end": self.end.isoformat(), "ci": self.ci}
        for name in ("version", "country", "container"):
            value = getattr(self, name)
            if value:
                params[name] = value
        return params

    def as_query(self) -> list[tuple[str, str]]:
        """`as_params` plus one `where` pair per property filter, for URLs (urlencode takes pairs)."""
        return [*self.as_params().items(), *(("where", str(item)) for item in self.properties)]


def json_quote(name: str) -> str:
    """A property name as a quoted JSON path member, so dots or colons in it are not path syntax."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _all(params: Mapping[str, Any], name: str) -> list[str]:
    """Every value of a repeated parameter: Starlette's QueryParams, a dict of lists, or one string."""
    getlist = getattr(params, "getlist", None)
    values: Any = getlist(name) if callable(getlist) else params.get(name)
    if values in (None, ""):
        return []
    if isinstance(values, str):
        return [values]
    if isinstance(values, Sequence):
        return [str(v) for v in values if v not in (None, "")]
    return [str(values)]


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
