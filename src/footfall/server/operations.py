"""What an operator can do, as a library: the HTTP API and the CLI both call this.

`StoreOperations` works on an open store. `footfall.server.operator.control.RemoteOperations`
offers the same methods over the HTTP API of a running server, for when that
server owns the embedded database. Results are JSON-ready dicts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from footfall.server.auth.accounts import LOCAL_ADMIN, AccountStore
from footfall.server.errors import FootfallError, NotFound, UsageError
from footfall.server.ingest.log import IngestLog
from footfall.server.ingest.pipeline import Ingestor
from footfall.server.ingest.schemas import parse_schema
from footfall.server.metrics import Metrics
from footfall.server.query import properties, reports
from footfall.server.query.filters import Filters, check_timezone
from footfall.server.query.public import PublicPolicy, daily_snapshot, remove_releases, snapshot_folder
from footfall.server.stores.base import APP_PATTERN, EventStore

log = logging.getLogger("footfall.server")


def secret_hash(secret: str) -> str:
    """GA4 API secrets are kept only as a hash; requests are checked against it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def influx_key(bucket: str, token: str) -> str:
    """The key an InfluxDB token and bucket are registered under: the token only as its hash."""
    return f"{bucket}@{secret_hash(token)}"


def check_keys(
    ga_tids: Sequence[str],
    ga4: Sequence[tuple[str, str]],
    firebase: Sequence[tuple[str, str]] = (),
    influx: Sequence[tuple[str, str]] = (),
) -> None:
    for tid in ga_tids:
        if not re.match(GA_TID, tid):
            raise UsageError(f"{tid!r} is not a GA tracking id such as UA-12345-1")
    for pattern, example, pairs in (
        (GA4_MEASUREMENT_ID, "a GA4 measurement id such as G-ABC123XYZ", ga4),
        (
            FIREBASE_APP_ID,
            "a Firebase app id such as 1:1234567890:android:321abc456def7890",
            firebase,
        ),
    ):
        for key, secret in pairs:
            if not re.match(pattern, key):
                raise UsageError(f"{key!r} is not {example}")
            if not 8 <= len(secret) <= 128:
                raise UsageError("an API secret has 8 to 128 characters")
    for token, bucket in influx:
        if not re.match(INFLUX_TOKEN, token):
            raise UsageError("an InfluxDB token has 16 to 512 printable ASCII characters, without spaces")
        if bucket != "*" and not re.match(INFLUX_BUCKET, bucket):
            raise UsageError(f"{bucket!r} is not a bucket name: 1 to 64 letters, digits, '.', '_' or '-'")


MAX_REPORT_DAYS = 3660


GA_TID = r"^(UA|YT|MO)-\d{1,12}-\d{1,6}$"
GA4_MEASUREMENT_ID = r"^G-[A-Z0-9]{4,16}$"
FIREBASE_APP_ID = r"^\d:\d{5,20}:(android|ios|web):[0-9a-f]{6,40}$"
INFLUX_TOKEN = r"^[!-~]{16,512}\Z"  # long enough that its unsalted hash reveals nothing
INFLUX_BUCKET = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z"


class Operations(Protocol):
    def add_app(
        self,
        name: str,
        ga_tids: Sequence[str] = (),
        ga4: Sequence[tuple[str, str]] = (),
        firebase: Sequence[tuple[str, str]] = (),
        *,
        influx: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]: ...

    def set_schema(self, app: str, schema: str) -> dict[str, Any]: ...

    def set_timezone(self, app: str, timezone: str) -> dict[str, Any]: ...

    def list_apps(self) -> list[dict[str, Any]]: ...

    def summary(self, app: str, days: int, params: Mapping[str, Any] | None = None) -> dict[str, Any]: ...

    def report(self, app: str, name: str, params: dict[str, Any]) -> dict[str, Any]: ...

    def public_snapshot(self, app: str, policy: PublicPolicy, folder: Path) -> dict[str, Any]: ...

    def remove_app(self, name: str) -> dict[str, Any]: ...


def check_app_name(name: str) -> str:
    if not APP_PATTERN.match(name):
        raise UsageError(
            f"{name!r} is not a valid app id: use 1 to 64 lowercase letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_days(days: int) -> int:
    if not 1 <= days <= MAX_REPORT_DAYS:
        raise UsageError(f"days must be between 1 and {MAX_REPORT_DAYS}, not {days}")
    return days


class StoreOperations:
    """The operations on an open store; with `accounts`, removing an app also removes its
    roles and public page there. `actor` names who acts, for the audit log.

    With `data` (the data directory), removing an app also deletes its published releases;
    with `log` (the data directory's ingest log), its events not yet loaded and quarantined;
    with `ingestor` (the running server's), what ingest caches about the app (schema,
    distinct-value slots).
    """

    def __init__(
        self,
        store: EventStore,
        accounts: AccountStore | None = None,
        actor: str = LOCAL_ADMIN,
        data: Path | None = None,
        ingestor: Ingestor | None = None,
        log: IngestLog | None = None,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.actor = actor
        self.data = data
        self.ingestor = ingestor
        self.log = log

    def add_app(
        self,
        name: str,
        ga_tids: Sequence[str] = (),
        ga4: Sequence[tuple[str, str]] = (),
        firebase: Sequence[tuple[str, str]] = (),
        actor: str | None = None,
        influx: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        """Register an app and its wire-protocol keys; `influx` holds (token, bucket) pairs,
        the bucket "*" for any."""
        check_app_name(name)
        check_keys(ga_tids, ga4, firebase, influx)
        created = self.store.add_app(name)
        for tid in ga_tids:
            self.store.add_key(name, "ga-tid", tid)
        for kind, pairs in (("ga4", ga4), ("firebase", firebase)):
            for key, secret in pairs:
                self.store.add_key(name, kind, key, secret_hash(secret))
        for token, bucket in influx:
            self.store.add_key(name, "influx", influx_key(bucket, token), secret_hash(token))
        keys = [*ga_tids, *(key for key, _ in (*ga4, *firebase)), *(f"influx:{bucket}" for _, bucket in influx)]
        self._audit(actor, "app_add" if created else "app_keys", name, ", ".join(keys))
        return {"name": name, "created": created}

    def set_schema(self, app: str, schema: str, actor: str | None = None) -> dict[str, Any]:
        if not self.store.has_app(app):
            raise NotFound(f"no app named {app!r}", code="unknown_app")
        parsed = parse_schema(schema)
        self.store.set_schema(app, json.dumps(json.loads(schema), sort_keys=True))
        self._audit(actor, "schema_set", app, f"{len(parsed.events)} events")
        return {"name": app, "events": sorted(parsed.events)}

    def set_timezone(self, app: str, timezone: str, actor: str | None = None) -> dict[str, Any]:
        """Set where an app's days start; every report follows it from the next query."""
        self._known(app)
        self.store.set_timezone(app, check_timezone(timezone))
        self._audit(actor, "timezone_set", app, timezone)
        return {"name": app, "timezone": timezone}

    def filters(self, app: str, params: Mapping[str, Any], default_days: int = 30) -> Filters:
        """The filters in request or CLI parameters, in the app's time zone."""
        return Filters.from_params(params, default_days, timezone=self.store.timezone(app))

    def _audit(self, actor: str | None, action: str, app: str, detail: str) -> None:
        if self.accounts is not None:
            self.accounts.audit(actor or self.actor, action, app, detail)

    def list_apps(self) -> list[dict[str, Any]]:
        return [
            {
                "name": app.name,
                "created": app.created.isoformat(timespec="seconds"),
                # An InfluxDB key is BUCKET@TOKEN-HASH: readers see the bucket, never the hash.
                "keys": [
                    {"kind": kind, "key": key.partition("@")[0] if kind == "influx" else key} for kind, key in app.keys
                ],
                "schema": app.has_schema,
                "timezone": app.timezone,
            }
            for app in self.store.list_apps()
        ]

    def summary(self, app: str, days: int, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The summary of the last `days` days, or of the range and filters in `params` (as `report` takes)."""
        self._known(app)
        return reports.summary(self.store, app, self.filters(app, params or {}, default_days=check_days(days)))

    def run_report(self, app: str, name: str, filters: Filters) -> reports.Report:
        self._known(app)
        return reports.run_report(self.store, name, app, filters)

    def report(self, app: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """A named report as JSON; `params` are query parameters (a list for a repeated `where`),
        and also carry the arguments of a report that takes some (`properties.ARGUMENT_REPORTS`)."""
        filters = self.filters(app, params)
        if name in properties.ARGUMENT_REPORTS:
            return properties.report_json(self.argument_report(app, name, filters, params), app, filters)
        return properties.report_json(self.run_report(app, name, filters), app, filters)

    def argument_report(self, app: str, name: str, filters: Filters, params: Mapping[str, Any]) -> reports.Report:
        self._known(app)
        return properties.run_argument_report(self.store, name, app, filters, params)

    def property_names(self, app: str, filters: Filters) -> dict[str, Any]:
        self._known(app)
        return properties.property_names(self.store, app, filters)

    def public_snapshot(self, app: str, policy: PublicPolicy, folder: Path) -> dict[str, Any]:
        """Today's differentially private release of `app`, stored in `folder` on first use."""
        self._known(app)
        return daily_snapshot(self.store, app, policy, folder)

    def remove_app(self, name: str, actor: str | None = None) -> dict[str, Any]:
        """Delete an app and all its data; its roles, public flag and releases, its events
        not yet loaded or quarantined, and ingest's caches go too, so nothing of it reaches
        an app later created under the same name.

        The order matters. The ingest log first (as a forget does): its lines would otherwise
        load into an app re-created under the name before they were removed. Then the store:
        once it has no such app, ingest refuses its events and a load drops any line that came
        in meanwhile. Once the accounts have no public flag, no new release is drawn; the
        releases are then deleted under the lock a draw holds.
        """
        self._known(name)
        unloaded = self.log.forget_app(name) if self.log is not None else 0
        events = self.store.remove_app(name)
        if self.ingestor is not None:
            self.ingestor.forget_app(name)
        if self.accounts is not None:
            self.accounts.remove_app(name, actor or self.actor, detail=f"{events} events deleted")
        releases = remove_releases(snapshot_folder(self.data), name) if self.data is not None else 0
        return {"name": name, "events": events, "unloaded_events": unloaded, "releases": releases}

    def set_public(self, app: str, public: bool, actor: str | None = None) -> None:
        """Share an existing app's public page, or stop sharing it; NotFound for an unknown app."""
        if self.accounts is None:
            raise UsageError("sharing needs the accounts store")
        self._known(app)
        self.accounts.set_public(app, public, actor or self.actor, exists=self.store.has_app)

    def _known(self, app: str) -> None:
        if not self.store.has_app(app):
            raise NotFound(f"no app named {app!r}", code="unknown_app")


RETENTION_CHECK_S = 3600.0  # how often a running server applies `retention_days`
RETENTION_CLOSE_WAIT_S = 10.0  # how long a stopping server waits for a round under way


def retention_cut(days: int, now: dt.datetime | None = None) -> dt.datetime:
    """The retention cut (naive UTC): midnight UTC `days` days before `now` (aware; default:
    now); events dated before it go."""
    now = now or dt.datetime.now(dt.timezone.utc)
    midnight = now.astimezone(dt.timezone.utc).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    return midnight - dt.timedelta(days=days)


class RetentionKeeper:
    """`retention_days` kept while the server runs: at start and then every `RETENTION_CHECK_S`,
    the raw events dated before the cut are deleted, as `footfall expire` does. On a store that
    can also expire by itself (a current ClickHouse: a TTL), that is set too, so the data stay
    within retention while no collector runs."""

    def __init__(self, store: EventStore, days: int, metrics: Metrics, interval_s: float = RETENTION_CHECK_S) -> None:
        self.store = store
        self.days = days
        self.metrics = metrics
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="footfall-retention", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(RETENTION_CLOSE_WAIT_S)

    def expire_now(self) -> int:
        cut = retention_cut(self.days)
        deleted = self.store.expire_events(cut)
        if deleted:
            self.metrics.count("footfall_events_expired_total", "Raw events deleted by retention_days.", deleted)
            log.info("retention: deleted %d events dated before %s (UTC)", deleted, f"{cut:%Y-%m-%d}")
        return deleted

    def _run(self) -> None:
        ttl_set = False  # the store's own expiry follows the setting (and is removed at 0), once
        while True:
            try:
                if not ttl_set:
                    if self.store.expire_by_itself(self.days):
                        log.info("retention: the store also expires events older than %d days by itself", self.days)
                    ttl_set = True
                if self.days > 0:
                    self.expire_now()
            except FootfallError as exc:  # the store is down: the next round tries again
                log.warning("retention: events could not be expired now: %s", exc.message)
            except Exception:
                log.exception("retention: expiring events failed")
            if (ttl_set and self.days <= 0) or self._stop.wait(self.interval_s):
                return
