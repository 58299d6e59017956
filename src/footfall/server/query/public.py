"""Public aggregates: one differentially private snapshot per app per UTC day.

A release covers complete UTC days only (the windows end yesterday). It is
computed once, on the first request of the day, stored under
`DATA/public/<app>/<YYYY-MM-DD>.json` (mode 0600, written atomically, first writer
wins across processes) and served unchanged until the next day, so polling the
page reveals nothing about what happened since. A restart reuses the stored file.

The unit of privacy is one install (every event stored under one install hash):

- Contribution bounds, applied in SQL before any noise: per window and dimension an
  install counts towards at most `max_values_per_install` values (its most used),
  and adds at most `max_events_per_install_day` events per UTC day across them and
  at most `max_events_per_install_window` in the whole window (without that, a year's
  window would need noise for 365 full days of one install).
  Events without an install id are left out: their contribution cannot be bounded.
- Install counts per value go through OpenDP's Laplace threshold mechanism (a
  stability-based histogram): a value appears only when its noised count clears a
  threshold, so no row appears or vanishes because of one install except with
  probability delta. Event counts of the rows released get Laplace noise.
- Budget: every (window, dimension) pair gets an equal share of `epsilon` (of
  which `INSTALLS_SHARE` goes to install counts) and of `delta`; basic sequential
  composition sums the privacy maps OpenDP reports, and the sum is stated in
  every release.
- Totals are sums of released rows (post-processing), never exact counts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import json
import logging
import math
import os
import secrets
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from footfall.server.errors import NotFound, StoreUnavailable
from footfall.server.query.dialect import dialect_of
from footfall.server.query.filters import Filters
from footfall.server.query.filters import today as utc_today
from footfall.server.settings import Settings, check_public_settings
from footfall.server.stores.base import APP_PATTERN, EventStore

log = logging.getLogger(__name__)

PUBLIC_DIMENSIONS = {  # name: (expression, extra condition)
    "versions": ("app_version", ""),
    "os": ("os", ""),
    "countries": ("country", ""),
    "events": ("name", ""),
    "commands": ("", "AND name = 'command'"),  # the property, in the store's dialect (bounded_counts)
}
PUBLIC_WINDOWS_DAYS = (30, 90, 365)  # each ends on the last complete UTC day
TOTALS_DIMENSION = "os"  # an install reports one OS, so the OS rows add up to the window's installs and events
INSTALLS_SHARE = 0.75  # of each (window, dimension) epsilon; the rest noises the event counts
UNKNOWN_VALUE = "(unknown)"  # shown for an empty or missing value, as in the reports
DIMENSION_TITLES = {
    "versions": "Versions",
    "os": "OS",
    "countries": "Countries",
    "events": "Events",
    "commands": "Commands",
}
SNAPSHOT_FOLDER = "public"  # inside the data directory
SCALE_MARGIN = 1 + 1e-9  # widens each noise scale a hair so float rounding never overspends the budget
ERROR_QUANTILE = 0.95  # the margin of error stated for each noised count

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclasses.dataclass(frozen=True)
class PublicPolicy:
    """What one release may spend and how much one install may contribute."""

    epsilon: float  # per release: one app, one day, all windows, dimensions and measures
    delta: float
    max_values_per_install: int  # per window and dimension
    max_events_per_install_day: int
    max_events_per_install_window: int

    @classmethod
    def from_settings(cls, settings: Settings) -> PublicPolicy:
        return cls(
            settings.public_epsilon,
            settings.public_delta,
            settings.public_max_values_per_install,
            settings.public_max_events_per_install_day,
            settings.public_max_events_per_install_window,
        )

    def check(self) -> PublicPolicy:
        check_public_settings(
            self.epsilon,
            self.delta,
            self.max_values_per_install,
            self.max_events_per_install_day,
            self.max_events_per_install_window,
        )
        return self


@dataclasses.dataclass(frozen=True)
class NoisePlan:
    """The two OpenDP mechanisms of one (window, dimension) pair and what they cost."""

    installs: Any  # dp.Measurement: {value: installs} -> {value: noised installs} above the threshold
    events: Any  # dp.Measurement: [events per released value] -> noised list
    installs_scale: float
    threshold: int
    events_scale: float
    epsilon: float  # from OpenDP's privacy maps at this window's contribution bounds
    delta: float


def _laplace_quantile(scale: float) -> int:
    """|noise| stays below this with probability ERROR_QUANTILE."""
    return math.ceil(-scale * math.log(1 - ERROR_QUANTILE))


@functools.lru_cache(maxsize=64)
def noise_plan(policy: PublicPolicy, days: int) -> NoisePlan:
    import opendp.prelude as dp  # loaded when a release is drawn, not by every CLI command

    # "contrib" marks OpenDP code that is proven but not yet externally reviewed.
    dp.enable_features("contrib")
    pairs = len(PUBLIC_WINDOWS_DAYS) * len(PUBLIC_DIMENSIONS)
    epsilon_installs = policy.epsilon / pairs * INSTALLS_SHARE
    epsilon_events = policy.epsilon / pairs * (1 - INSTALLS_SHARE)
    delta_installs = policy.delta / pairs
    values = policy.max_values_per_install
    # One install changes at most `values` counts, each by one: (l0, l1, l-infinity).
    installs_distance = (values, values, 1)
    # Its capped events, over its kept values and every day of the window.
    events_distance = events_bound(policy, days)

    installs_scale = values / epsilon_installs * SCALE_MARGIN
    histogram = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=int))
    histogram_distance = dp.l01inf_distance(dp.absolute_distance(T=int))

    def thresholded(threshold: int) -> Any:
        return dp.m.make_laplace_threshold(histogram, histogram_distance, scale=installs_scale, threshold=threshold)

    threshold = int(
        dp.binary_search(
            lambda t: thresholded(int(t)).map(installs_distance)[1] <= delta_installs, T=int, bounds=(1, 2**31 - 2)
        )
    )
    installs = thresholded(threshold)
    events_scale = events_distance / epsilon_events * SCALE_MARGIN
    events: Any = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=events_scale)
    spent_installs = installs.map(installs_distance)
    return NoisePlan(
        installs,
        events,
        installs_scale,
        threshold,
        events_scale,
        float(spent_installs[0]) + float(events.map(events_distance)),
        float(spent_installs[1]),
    )


def events_bound(policy: PublicPolicy, days: int) -> int:
    """The most events one install adds to the counts of one window and dimension."""
    return min(policy.max_events_per_install_day * days, policy.max_events_per_install_window)


def privacy_budget(policy: PublicPolicy) -> tuple[float, float]:
    """(epsilon, delta) of one release: the sum over every window and dimension (basic composition)."""
    plans = [noise_plan(policy, days) for days in PUBLIC_WINDOWS_DAYS]
    dimensions = len(PUBLIC_DIMENSIONS)
    return sum(p.epsilon for p in plans) * dimensions, sum(p.delta for p in plans) * dimensions


def noised_rows(bounded: Mapping[str, tuple[int, int]], plan: NoisePlan) -> list[dict[str, Any]]:
    """Release `{value: (installs, events)}`, already contribution-bounded, under `plan`."""
    installs: dict[str, int] = plan.installs({value: counts[0] for value, counts in bounded.items()})
    shown = sorted(installs)
    events: list[int] = plan.events([bounded[value][1] for value in shown]) if shown else []
    rows = [
        {"value": value, "installs": int(installs[value]), "events": max(0, int(count))}  # a count is never negative
        for value, count in zip(shown, events, strict=True)
    ]
    return sorted(rows, key=lambda row: (-row["installs"], row["value"]))


def bounded_counts(
    store: EventStore, app: str, filters: Filters, dimension: str, policy: PublicPolicy
) -> dict[str, tuple[int, int]]:
    """Installs and events per value after the contribution bounds: the exact input to the noise."""
    d = dialect_of(store)
    expression, condition = PUBLIC_DIMENSIONS[dimension]
    if dimension == "commands":
        expression = d.prop_text(d.key("command"))
    where, params = filters.where(app, d)
    # One row per install, UTC day and value; the bounds are applied here, in Python, for every engine.
    daily = [
        (str(install), day, str(value), int(n))
        for install, day, value, n in store.query(
            f"SELECT install, {d.day('time')} AS day, coalesce(nullif({expression}, ''), '{UNKNOWN_VALUE}') AS value,"
            f" count(*) FROM events WHERE {where} {condition} AND install <> '' GROUP BY install, day, value",
            params,
        ).rows
    ]
    return bound_contributions(daily, policy.max_values_per_install, policy.max_events_per_install_day,
                               events_bound(policy, filters.days))  # fmt: skip


def bound_contributions(
    daily: list[tuple[str, Any, str, int]], values: int, cap: int, window_cap: int
) -> dict[str, tuple[int, int]]:
    """Installs and events per value, from (install, day, value, events) rows, after the bounds:

    each install keeps its `values` most used values (ties by value, so the choice is its own data
    alone); an install's day over `cap` is scaled down across its values (floor), so the day adds
    at most `cap`; and an install over the window's `window_cap` likewise.
    """
    used: dict[str, dict[str, int]] = {}
    for install, _, value, n in daily:
        per_install = used.setdefault(install, {})
        per_install[value] = per_install.get(value, 0) + n
    kept = {
        install: set(sorted(counts, key=lambda value: (-counts[value], value))[:values])
        for install, counts in used.items()
    }
    rows = [row for row in daily if row[2] in kept[row[0]]]
    day_totals: dict[tuple[str, Any], int] = {}
    for install, day, _, n in rows:
        day_totals[(install, day)] = day_totals.get((install, day), 0) + n
    per_value: dict[tuple[str, str], int] = {}
    for install, day, value, n in rows:
        total = day_totals[(install, day)]
        capped = math.floor(n * cap / total) if total > cap else n
        per_value[(install, value)] = per_value.get((install, value), 0) + capped
    install_totals: dict[str, int] = {}
    for (install, _), n in per_value.items():
        install_totals[install] = install_totals.get(install, 0) + n
    result: dict[str, tuple[int, int]] = {}
    for (install, value), n in per_value.items():
        total = install_totals[install]
        clipped = math.floor(n * window_cap / total) if total > window_cap else n
        installs, events = result.get(value, (0, 0))
        result[value] = (installs + 1, events + clipped)
    return result


BoundedCounts = dict[int, dict[str, dict[str, tuple[int, int]]]]  # window days -> dimension -> value -> counts


def release_windows(through: dt.date) -> dict[int, Filters]:
    return {days: Filters(start=through - dt.timedelta(days=days - 1), end=through) for days in PUBLIC_WINDOWS_DAYS}


def gather_counts(store: EventStore, app: str, policy: PublicPolicy, through: dt.date) -> BoundedCounts:
    """Every exact, contribution-bounded count one release noises."""
    return {
        days: {name: bounded_counts(store, app, filters, name, policy) for name in PUBLIC_DIMENSIONS}
        for days, filters in release_windows(through).items()
    }


def noised_release(app: str, counts: BoundedCounts, policy: PublicPolicy, release_day: dt.date) -> dict[str, Any]:
    """One draw of the release from its exact counts; everything after the noise is post-processing."""
    policy.check()
    epsilon, delta = privacy_budget(policy)
    through = release_day - dt.timedelta(days=1)
    windows = []
    for days, filters in release_windows(through).items():
        plan = noise_plan(policy, days)
        items = {name: noised_rows(counts[days][name], plan) for name in PUBLIC_DIMENSIONS}
        totals = items[TOTALS_DIMENSION]
        windows.append(
            {
                "days": days,
                "start": filters.start.isoformat(),
                "end": filters.end.isoformat(),
                "installs": sum(row["installs"] for row in totals),
                "events": sum(row["events"] for row in totals),
                "noise": {
                    "threshold_installs": plan.threshold,
                    "installs_scale": round(plan.installs_scale, 3),
                    "events_scale": round(plan.events_scale, 3),
                    "installs_error_95": _laplace_quantile(plan.installs_scale),
                    "events_error_95": _laplace_quantile(plan.events_scale),
                },
                "items": items,
            }
        )
    return {
        "app": app,
        "release": release_day.isoformat(),
        "through": through.isoformat(),
        "privacy": {
            "epsilon": epsilon,
            "delta": delta,
            "unit": "install",
            "composition": "basic",
            "max_values_per_install": policy.max_values_per_install,
            "max_events_per_install_day": policy.max_events_per_install_day,
            "max_events_per_install_window": policy.max_events_per_install_window,
            "totals_from": TOTALS_DIMENSION,
        },
        "windows": windows,
    }


def compute_release(store: EventStore, app: str, policy: PublicPolicy, release_day: dt.date) -> dict[str, Any]:
    """One fresh release; `daily_snapshot` makes sure it is drawn once per app and day."""
    policy.check()
    counts = gather_counts(store, app, policy, release_day - dt.timedelta(days=1))
    return noised_release(app, counts, policy, release_day)


def snapshot_path(folder: Path, app: str, release_day: dt.date) -> Path:
    if not APP_PATTERN.match(app):  # callers check the app exists; this keeps the name inside `folder`
        raise NotFound(f"no app named {app!r}", code="unknown_app")
    return folder / app / f"{release_day.isoformat()}.json"


def daily_snapshot(
    store: EventStore, app: str, policy: PublicPolicy, folder: Path, today: dt.date | None = None
) -> dict[str, Any]:
    """Today's release of `app`: the stored one, or a new one stored before it is shown.

    `folder` is `DATA/public`. Within a process a lock keeps two requests from
    drawing twice; across processes the first file linked into place wins and the
    others read it, so every reader of one day sees one draw.
    """
    release_day = today or utc_today()
    path = snapshot_path(folder, app, release_day)
    stored = _read_snapshot(path)
    if stored is not None:
        return stored
    lock = _lock_for(app)
    if not lock.acquire(blocking=False):
        # Another request is drawing today's release (seconds on a large app). Rather than hold a
        # worker thread per waiting visitor, show the latest release already published.
        previous = _latest_snapshot(path.parent, before=release_day)
        if previous is not None:
            return previous
        raise StoreUnavailable(
            f"the public release of {app} for {release_day} is being computed; try again shortly",
            code="release_pending",
        )
    try:
        stored = _read_snapshot(path)
        if stored is not None:
            return stored
        return _store_once(path, compute_release(store, app, policy, release_day))
    finally:
        lock.release()


def remove_releases(folder: Path, app: str) -> int:
    """Delete every stored release of `app` from `folder` (`DATA/public`); returns how many.

    For a removed app, so an app later created under its name never serves these. Taken
    under the per-app lock `daily_snapshot` draws under, waiting for a draw in progress
    (it would otherwise store its release after this ran).
    """
    if not APP_PATTERN.match(app):  # keeps the name inside `folder`
        raise NotFound(f"no app named {app!r}", code="unknown_app")
    releases = folder / app
    with _lock_for(app):
        if not releases.is_dir():
            return 0
        count = sum(1 for _ in releases.glob("????-??-??.json"))
        shutil.rmtree(releases)  # set-aside damaged files and stray temporaries too
    return count


def _latest_snapshot(folder: Path, before: dt.date) -> dict[str, Any] | None:
    names = sorted((p.name for p in folder.glob("????-??-??.json") if p.stem < before.isoformat()), reverse=True)
    return _read_snapshot(folder / names[0]) if names else None


def _lock_for(app: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(app, threading.Lock())


def _read_snapshot(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        # Only a damaged disk or a hand edit gets here: set it aside rather than serve a broken page.
        log.warning("public snapshot %s is unreadable (%s); setting it aside", path, exc)
        path.replace(path.with_name(f"{path.name}.damaged-{secrets.token_hex(4)}"))
        return None
    return data if isinstance(data, dict) else None


def _store_once(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    for folder in (path.parent.parent, path.parent):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(data).encode())
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process stored today's release first: keep it
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    stored = _read_snapshot(path)
    if stored is None:
        raise OSError(f"the public snapshot {path} vanished after it was written")
    return stored


def snapshot_folder(data: Path) -> Path:
    return data / SNAPSHOT_FOLDER
