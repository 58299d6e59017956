"""Realistic synthetic usage, so a new operator sees a full dashboard at once.

Three apps over 90 days (about 320,000 events at scale 1). Each install starts on
the newest release of its first day and upgrades after a lag; installs mix OSes,
architectures, Python versions, countries, CI providers and containers; runs are
commands with options, durations and outcomes, and some commands send a tool event
of their own with properties (`TOOL_EVENTS`: texts, numbers and flags), so the
Properties tab has data. One release of each app fails more often than the others
(`BAD_RELEASE_ERRORS`), so the error reports and the version comparison show something.
Ids are hashed exactly as the collector hashes real ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import uuid
from collections.abc import Callable, Iterator, Sequence

from footfall.server.ingest.pipeline import keyed_hash
from footfall.server.stores.base import EventRecord, EventStore

DEFAULT_DAYS = 90
DAILY_CHURN = 0.012  # chance an install stops for good, per day
UPGRADE_LAG_DAYS = 9.0  # mean days before an install moves to a newer release


@dataclasses.dataclass(frozen=True)
class DemoApp:
    name: str
    installs: int  # at scale 1
    releases: tuple[tuple[int, str], ...]  # (day the release appears, version)
    commands: tuple[tuple[str, float, tuple[str, ...]], ...]  # (path, weight, options)
    errors: tuple[str, ...]


DEMO_APPS: tuple[DemoApp, ...] = (
    DemoApp(
        "docker-locust",
        2400,
        ((-200, "1.4.2"), (12, "1.5.0"), (41, "1.5.1"), (70, "1.6.0")),
        (
            ("run standalone", 5, ("--headless", "--users", "--spawn-rate", "--run-time")),
            ("run master", 2, ("--expect-workers", "--web-port", "--headless")),
            ("run worker", 3, ("--master-host", "--processes")),
        ),
        ("ConnectionError", "TimeoutError", "ValueError"),
    ),
    DemoApp(
        "mdlint",
        3900,
        ((-300, "0.9.0"), (5, "0.10.0"), (33, "0.10.1"), (58, "0.11.0"), (84, "0.11.1")),
        (
            ("check", 8, ("--config", "--fix", "--quiet", "--format")),
            ("fix", 3, ("--dry-run", "--config")),
            ("init", 0.5, ("--preset",)),
            ("rules list", 0.7, ("--all",)),
        ),
        ("ConfigError", "UnicodeDecodeError"),
    ),
    DemoApp(
        "tilecraft",
        1100,
        ((-120, "2.1.0"), (27, "2.2.0"), (66, "2.3.0")),
        (
            ("serve", 4, ("--port", "--cache", "--workers")),
            ("render", 2, ("--zoom", "--bbox", "--format")),
            ("import", 1, ("--format", "--append")),
        ),
        ("MemoryError", "OSError", "KeyError"),
    ),
)

COUNTRIES = (
    ("US", 25),
    ("DE", 10),
    ("IN", 8),
    ("GB", 7),
    ("FR", 5),
    ("BR", 5),
    ("CN", 5),
    ("JP", 4),
    ("CA", 4),
    ("NL", 3),
    ("PL", 3),
    ("ES", 2),
    ("IT", 2),
    ("SE", 2),
    ("AU", 2),
    ("KR", 2),
    ("CH", 1),
    ("UA", 1),
    ("MX", 1),
    ("NG", 1),
)
PLATFORMS = (
    (("linux", "6.1", "x86_64"), 24),
    (("linux", "5.15", "x86_64"), 14),
    (("linux", "6.8", "aarch64"), 8),
    (("linux", "6.8", "x86_64"), 9),
    (("macos", "14.6", "arm64"), 14),
    (("macos", "15.1", "arm64"), 10),
    (("macos", "13.6", "x86_64"), 5),
    (("windows", "10.0", "amd64"), 16),
)
PYTHONS = (("3.9", 6), ("3.10", 14), ("3.11", 30), ("3.12", 35), ("3.13", 15))
CI_PROVIDERS = (
    ("github-actions", 60),
    ("gitlab", 20),
    ("jenkins", 10),
    ("circleci", 5),
    ("buildkite", 5),
)
# (app, command) -> (event name, property generator): the tool's own `track(...)` after that command.
# Drawn from a generator seeded per run, so the main stream (and every other number) is unchanged.
ToolEvent = tuple[str, Callable[[random.Random], dict[str, object]]]
TOOL_EVENTS: dict[tuple[str, str], ToolEvent] = {
    ("mdlint", "check"): (
        "lint",
        lambda r: {
            "format": r.choices(("text", "json", "sarif", "github"), (60, 20, 8, 12))[0],
            "files": max(1, int(r.lognormvariate(3, 1.4))),
            "problems": int(r.expovariate(1 / 6)),
        },
    ),
    ("mdlint", "fix"): ("fixed", lambda r: {"files": max(1, int(r.lognormvariate(2, 1))), "backup": r.random() < 0.3}),
    ("tilecraft", "render"): (
        "export",
        lambda r: {
            "format": r.choices(("png", "webp", "mvt", "pdf"), (50, 25, 20, 5))[0],
            "tiles": max(1, int(r.lognormvariate(5, 1.8))),
            "zoom": r.randint(0, 18),
        },
    ),
    ("docker-locust", "run standalone"): (
        "launch",
        lambda r: {"users": r.choice((1, 10, 50, 100, 500, 1000, 5000)), "role": "standalone"},
    ),
    ("docker-locust", "run master"): (
        "launch",
        lambda r: {"users": r.choice((100, 1000, 5000, 20000)), "workers": r.randint(2, 32), "role": "master"},
    ),
}
BAD_RELEASE_ERRORS = 2.5  # the second-newest release of each app fails this many times as often
DURATIONS = (("<1s", 30), ("1-10s", 40), ("10-60s", 20), ("1-10m", 8), (">10m", 2))


def _pick(rng: random.Random, weighted: Sequence[tuple[object, float]]) -> object:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


@dataclasses.dataclass
class _Install:
    raw_id: str
    first_day: int
    version_index: int
    upgrade_after: float
    activity: float  # chance of use on a weekday
    platform: tuple[str, str, str]
    python: str
    country: str
    ci: str
    container: str
    active: bool = True


def _version_at(app: DemoApp, day: int) -> int:
    return max(i for i, (released, _) in enumerate(app.releases) if released <= day)


def _new_install(rng: random.Random, app: DemoApp, day: int) -> _Install:
    ci = str(_pick(rng, CI_PROVIDERS)) if rng.random() < 0.25 else ""
    container = ""
    if ci or rng.random() < 0.15:
        container = "docker" if rng.random() < 0.8 else rng.choice(("kubernetes", "podman"))
    return _Install(
        raw_id=uuid.UUID(int=rng.getrandbits(128)).hex,
        first_day=day,
        version_index=_version_at(app, day),
        upgrade_after=rng.expovariate(1 / UPGRADE_LAG_DAYS),
        activity=0.9 if ci else rng.uniform(0.1, 0.6),
        platform=(("linux", "6.1", "x86_64") if ci else _pick(rng, PLATFORMS)),  # type: ignore[arg-type]
        python=str(_pick(rng, PYTHONS)),
        country="US" if ci and rng.random() < 0.5 else str(_pick(rng, COUNTRIES)),
        ci=ci,
        container=container,
    )


def generate(
    install_key: bytes,
    days: int = DEFAULT_DAYS,
    scale: float = 1.0,
    seed: int = 7,
    now: dt.datetime | None = None,
) -> Iterator[list[EventRecord]]:
    """Yield one list of records per app and day, oldest first; `days * len(DEMO_APPS)` lists."""
    rng = random.Random(seed)
    end = (now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).replace(microsecond=0)
    start_day = (end - dt.timedelta(days=days - 1)).date()
    populations: dict[str, list[_Install]] = {app.name: [] for app in DEMO_APPS}
    for day in range(days):
        date = start_day + dt.timedelta(days=day)
        weekend = date.weekday() >= 5
        for app in DEMO_APPS:
            installs = populations[app.name]
            # New installs arrive steadily, with a bump after each release.
            arrivals = (
                app.installs * scale / days * (1.6 if _version_at(app, day) != _version_at(app, day - 3) else 1.0)
            )
            for _ in range(int(arrivals) + (rng.random() < arrivals % 1)):
                installs.append(_new_install(rng, app, day))
            records: list[EventRecord] = []
            for install in installs:
                if not install.active:
                    continue
                if rng.random() < DAILY_CHURN:
                    install.active = False
                    continue
                newest = _version_at(app, day)
                if install.version_index < newest and rng.random() < 1 / (1 + install.upgrade_after):
                    install.version_index = newest
                chance = install.activity * (0.35 if weekend and not install.ci else 1.0)
                if rng.random() >= chance:
                    continue
                for _ in range(rng.choice((1, 1, 1, 2, 3))):
                    records.extend(
                        _run(
                            rng,
                            app,
                            install,
                            date,
                            end,
                            install_key,
                            first=day == install.first_day,
                        )
                    )
            yield records


def _run(
    rng: random.Random,
    app: DemoApp,
    install: _Install,
    date: dt.date,
    end: dt.datetime,
    key: bytes,
    first: bool,
) -> list[EventRecord]:
    hour = min(23, max(0, int(rng.gauss(14, 4))))
    started = dt.datetime.combine(date, dt.time(hour, rng.randrange(60), rng.randrange(60)))
    if started > end:
        started = end - dt.timedelta(minutes=rng.randrange(1, 600))
    session = uuid.UUID(int=rng.getrandbits(128)).hex
    command, _, options = app.commands[rng.choices(range(len(app.commands)), [c[1] for c in app.commands])[0]]
    used = sorted(o for o in options if rng.random() < 0.35)
    bad_release = install.version_index == len(app.releases) - 2
    failed = rng.random() < 0.04 * (BAD_RELEASE_ERRORS if bad_release else 1.0)
    outcome = rng.choice(app.errors) if failed else "ok"
    os_name, os_version, arch = install.platform
    names: list[tuple[str, dict[str, object]]] = []
    if first:
        names.append(("install", {}))
    names.append(
        (
            "command",
            {
                "command": command,
                "options": used,
                "duration": _pick(rng, DURATIONS),
                "outcome": outcome,
            },
        )
    )
    if failed:
        names.append(("error", {"command": command, "error": outcome}))
    elif (app.name, command) in TOOL_EVENTS:
        event, properties = TOOL_EVENTS[app.name, command]
        names.append((event, properties(random.Random(session))))
    return [
        EventRecord(
            time=started + dt.timedelta(seconds=index),
            received=started + dt.timedelta(seconds=index, milliseconds=rng.randrange(20, 900)),
            app=app.name,
            app_version=app.releases[install.version_index][1],
            name=name,
            install=keyed_hash(key, "install", app.name, install.raw_id),
            session=keyed_hash(key, "session", app.name, session),
            os=os_name,
            os_version=os_version,
            arch=arch,
            runtime="cpython",
            runtime_version=install.python,
            ci=install.ci,
            container=install.container,
            country=install.country,
            props=json.dumps(props, separators=(",", ":"), sort_keys=True),
            source="native",
        )
        for index, (name, props) in enumerate(names)
    ]


def load_demo(
    store: EventStore,
    install_key: bytes,
    days: int = DEFAULT_DAYS,
    scale: float = 1.0,
    seed: int = 7,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Register the demo apps and store their events; returns the number of events."""
    for app in DEMO_APPS:
        store.add_app(app.name)
    total_steps = days * len(DEMO_APPS)
    written = 0
    pending = []
    for step, records in enumerate(generate(install_key, days, scale, seed), start=1):
        pending.append(store.write(records))
        written += len(records)
        if progress:
            progress(step, total_steps)
    for future in pending:
        future.result()
    return written
