"""Generated usage data for the contract: hypothesis strategies and a fixed-seed generator.

Both build the same shape through one `build` function that asks a `Chooser` for every
choice: `random.Random` for the fixed seed (`generate`), hypothesis's `draw` for the
strategy (`datasets`), so a failing example shrinks. The data covers what the reports must
get right:

- several apps (`alpha`, `beta`; `gamma` is never queried, so it must never leak in), each
  with installs upgrading across versions, blank versions included;
- countries, blank (unknown) included; CI names and container kinds;
- runs without an install id (no-id mode) and events without a run;
- native command events (command, sometimes blank or missing; options, sometimes one
  repeated; outcome: "ok", exception types, "exit:2" and "error:ValueError"; duration,
  including an odd duration bucket), native `export` events (format; rows, a number or the
  same as text; size, numbers of both signs and several decades, sometimes null; tags, a
  list with repeats, a blank and a number; compressed, a boolean; via.client, a name with a
  dot; extra, an object), GA v1 hits as the GA v1 decoder stores
  them (`event` with category/action/label and `cdN` dimensions, `pageview` with a
  screen) and GA4 events (their own names and params);
- late events (received days after they happened, so written after later ones);
- day and week boundaries: runs at 23:59:59 and 00:00:00 UTC and Berlin time, on a Sunday
  night, and across Berlin's DST changes (the last Sundays of March and October 2026).

Times are whole seconds. Within a run, events are written in time order (the SDK sends a
run in order); the whole data set is written in order of receipt.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from hypothesis import strategies as st

from footfall.server.stores.base import EventRecord

T = TypeVar("T")

APPS = ("alpha", "beta", "gamma")
QUERIED_APPS = ("alpha", "beta")
VERSIONS = ("0.9", "1.0", "1.2", "1.10", "2.0rc1")
COUNTRIES = ("DE", "FR", "US", "BR", "")
CI_NAMES = ("", "", "", "github-actions", "gitlab")
CONTAINERS = ("", "", "docker", "podman", "kubernetes")
PLATFORMS = (
    ("linux", "6.1", "x86_64"),
    ("linux", "6.8", "aarch64"),
    ("darwin", "14.2", "arm64"),
    ("windows", "10.0", "AMD64"),
    ("", "", "x86_64"),
)
RUNTIMES = (("cpython", "3.12"), ("cpython", "3.11"), ("pypy", "3.10"), ("cpython", ""))
COMMANDS = ("build", "check", "serve", "export", "")
OPTIONS = ("--verbose", "--output", "--force", "--dry-run", "--jobs")
OUTCOMES = ("ok", "ok", "ok", "ok", "ValueError", "KeyboardInterrupt", "exit:2", "error:ValueError", "KeyError")
SIZES = (0, 0.5, 2.5, 3, 10, 250, 1000, 12345, -4, -250, None)  # None: JSON null, which counts as no value
TAGS = ("a", "b", "c", "", 1)  # list elements: text, a blank, a number
DURATIONS = ("<1s", "1-10s", "10-60s", "1-10m", "10-60m", ">1h", "")
FORMATS = ("csv", "json", "parquet")
GA_CATEGORIES = ("ui", "file", "net")
GA_ACTIONS = ("open", "save", "click", "fetch", "Zoom")  # capitals sort before lower case
GA_LABELS = ("toolbar", "menü", "menu", None)  # None: the hit had no label (the decoder drops empty ones)
GA4_EVENTS = ("level_up", "tutorial_begin", "select_content")
DIMENSION_VALUES = ("free", "pro", "team", "")
HISTORY_DAYS = 45  # events reach this far back from now
FIXED_MOMENTS = (  # boundary moments (naive UTC) every data set may use
    dt.datetime(2026, 3, 28, 22, 59, 59),  # Berlin 23:59:59 CET, Saturday
    dt.datetime(2026, 3, 28, 23, 0, 0),  # Berlin 00:00 on DST day
    dt.datetime(2026, 3, 29, 0, 59, 59),  # Berlin 01:59:59 CET
    dt.datetime(2026, 3, 29, 1, 0, 0),  # Berlin 03:00 CEST
    dt.datetime(2026, 3, 29, 21, 59, 59),  # Berlin Sunday 23:59:59 CEST
    dt.datetime(2026, 3, 29, 22, 0, 0),  # Berlin Monday 00:00: a new week
    dt.datetime(2026, 3, 29, 23, 59, 59),  # UTC Sunday 23:59:59
    dt.datetime(2026, 3, 30, 0, 0, 0),  # UTC Monday 00:00
    dt.datetime(2026, 10, 25, 0, 30, 0),  # Berlin 02:30 CEST, before the clocks go back
    dt.datetime(2026, 10, 25, 1, 30, 0),  # Berlin 02:30 CET, the repeated hour
)


class Chooser(Protocol):
    def integer(self, low: int, high: int) -> int: ...

    def choice(self, options: Sequence[T]) -> T: ...


class RandomChooser:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        return self.random.randint(low, high)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.random.randrange(len(options))]


class DrawChooser:
    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        self.draw = draw

    def integer(self, low: int, high: int) -> int:
        result: int = self.draw(st.integers(low, high))
        return result

    def choice(self, options: Sequence[T]) -> T:
        result: T = self.draw(st.sampled_from(options))
        return result


def hashed(*parts: object) -> str:
    """A 64-hex-digit hash like the collector's keyed hashes."""
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


@dataclasses.dataclass
class Install:
    app: str
    install: str  # "" for no-id mode
    country: str
    ci: str
    container: str
    platform: tuple[str, str, str]
    runtime: tuple[str, str]
    first_version: int


def _run_events(pick: Chooser, install: Install, start: dt.datetime, version: str) -> list[dict[str, Any]]:
    """One run's events: (time, name, props, source), seconds apart, in order."""
    kind = pick.choice(("native", "native", "native", "ga-v1", "ga4")) if install.install else "native"
    events: list[dict[str, Any]] = []
    moment = start
    for _ in range(pick.integer(1, 4)):
        if kind == "native":
            name = pick.choice(("command", "command", "export", "start"))
            if name == "command":
                options = [pick.choice(OPTIONS) for _ in range(pick.integer(0, 2))]
                props: dict[str, Any] = {
                    "command": pick.choice(COMMANDS),
                    "options": options,
                    "outcome": pick.choice(OUTCOMES),
                    "duration": pick.choice(DURATIONS),
                }
                if pick.integer(0, 9) == 0:
                    props["duration"] = "weird"  # a value outside the buckets
                if pick.integer(0, 14) == 0:
                    del props["command"]  # a missing command: one (unknown) row with the blank ones
            elif name == "export":
                # rows: a number, or the same as text ("250" and 250 are one value); size: scalar numbers
                # of every sign and decade, sometimes null or missing; tags: a list, repeats included;
                # compressed: a boolean
                props = {"format": pick.choice(FORMATS), "rows": pick.choice((3, 10, 250, "250"))}
                if pick.integer(0, 4):
                    props["size"] = pick.choice(SIZES)
                if pick.integer(0, 2):
                    props["tags"] = [pick.choice(TAGS) for _ in range(pick.integer(0, 3))]
                if pick.integer(0, 1):
                    props["compressed"] = bool(pick.integer(0, 1))
                if pick.integer(0, 3) == 0:  # a name with a dot (a path member, not path syntax)
                    props["via.client"] = pick.choice(("cli", "api"))
                if pick.integer(0, 5) == 0:  # an object: a value of no row
                    props["extra"] = {"k": pick.integer(0, 2)}
            else:
                props = {}
        elif kind == "ga-v1":
            name = pick.choice(("event", "event", "pageview"))
            if name == "event":
                props = {"category": pick.choice(GA_CATEGORIES), "action": pick.choice(GA_ACTIONS)}
                text = pick.choice(GA_LABELS)
                if text is not None:
                    props["label"] = text
                if pick.integer(0, 1):
                    props["value"] = pick.integer(0, 5)
            else:
                props = {"screen": pick.choice(("home", "settings"))}
            for slot in (1, 2, 12):  # the decoder keeps only non-empty custom dimensions
                if pick.integer(0, 2) == 0:
                    props[f"cd{slot}"] = pick.choice(DIMENSION_VALUES[:-1])
            if pick.integer(0, 3) == 0:
                props["cm1"] = pick.integer(-2, 9)  # a custom metric: an integer
        else:
            name = pick.choice(GA4_EVENTS)
            props = {"level": pick.integer(1, 3), "engagement_time_msec": pick.choice((100, 2500))}
            if pick.integer(0, 2) == 0:
                props["cd3"] = pick.choice(DIMENSION_VALUES)
        events.append({"time": moment, "name": name, "props": props, "source": kind, "version": version})
        moment += dt.timedelta(seconds=pick.integer(0, 600))
    return events


def build(pick: Chooser, now: dt.datetime, size: int = 60) -> list[EventRecord]:
    """A data set of about `size` runs per app, as records in the order of receipt."""
    now = now.replace(microsecond=0)
    records: list[tuple[dt.datetime, int, EventRecord]] = []  # (received, sequence, record)
    sequence = 0
    for app in APPS:
        installs = [
            Install(
                app,
                hashed(app, "install", n) if n % 7 else "",  # every 7th "install" is no-id mode
                pick.choice(COUNTRIES),
                pick.choice(CI_NAMES),
                pick.choice(CONTAINERS),
                pick.choice(PLATFORMS),
                pick.choice(RUNTIMES),
                pick.integer(0, len(VERSIONS) - 1),
            )
            for n in range(max(3, size // 4))
        ]
        for n in range(size if app in QUERIED_APPS else 5):
            install = pick.choice(installs)
            where = pick.integer(0, 9)
            if where == 0:
                start = pick.choice(FIXED_MOMENTS)
            elif where == 1:  # a run on a day boundary near now, UTC or Berlin
                day = (now - dt.timedelta(days=pick.integer(1, 20))).replace(hour=0, minute=0, second=0)
                start = day - dt.timedelta(hours=pick.choice((0, 1, 2))) - dt.timedelta(seconds=pick.choice((0, 1)))
            elif where == 2:  # today, so partial periods have data
                start = now - dt.timedelta(seconds=pick.integer(60, 6 * 3600))
            else:
                start = now - dt.timedelta(seconds=pick.integer(3600, HISTORY_DAYS * 86400))
            # installs upgrade over time: later runs are on later versions
            age = (now - start).days
            step = 0 if age > 30 else 1 if age > 10 else 2
            version_index = min(install.first_version + step, len(VERSIONS) - 1)
            version = VERSIONS[version_index] if pick.integer(0, 11) else ""
            session = hashed(app, "run", n) if pick.integer(0, 14) else ""  # a few events belong to no run
            ga_v1_session = hashed(app, install.install, start.date())  # GA v1 has no run id: one per install-day
            late = dt.timedelta(days=pick.integer(1, 3)) if pick.integer(0, 9) == 0 else dt.timedelta(0)
            for item in _run_events(pick, install, start, version):
                received = min(item["time"] + late + dt.timedelta(seconds=1), max(now, item["time"]))
                os_name, os_version, arch = install.platform
                runtime, runtime_version = install.runtime
                record = EventRecord(
                    item["time"],
                    received,
                    app,
                    item["version"],
                    item["name"],
                    install.install,
                    ga_v1_session if item["source"] == "ga-v1" else session,
                    os_name,
                    os_version,
                    arch,
                    runtime,
                    runtime_version,
                    install.ci,
                    install.container,
                    install.country,
                    json.dumps(item["props"]),
                    item["source"],
                )
                records.append((received, sequence, record))
                sequence += 1
    records.sort(key=lambda entry: (entry[0], entry[1]))
    return [record for _, _, record in records]


def generate(seed: int, now: dt.datetime, size: int = 60) -> list[EventRecord]:
    """The fixed-seed data set."""
    return build(RandomChooser(seed), now, size)


@st.composite
def datasets(draw: Callable[[st.SearchStrategy[Any]], Any], now: dt.datetime, size: int = 30) -> list[EventRecord]:
    """Data sets as a hypothesis strategy (each choice drawn, so failures shrink)."""
    return build(DrawChooser(draw), now, draw(st.integers(1, size)))
