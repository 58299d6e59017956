"""Server settings: one table drives `--help`, validation, the environment and the docs.

Precedence, resolved once in `resolve_settings`: command-line flag, then the
`FOOTFALL_<NAME>` environment variable, then the default.
"""

from __future__ import annotations

import dataclasses
import math
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from footfall.server.errors import UsageError


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "footfall"


MAX_RETENTION_DAYS = 36_500  # a hundred years: past it, a cut falls before any date a store holds
MAX_WORKERS = 64  # worker numbers are two digits in segment names; far past any machine's useful count


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str

    @property
    def env(self) -> str:
        return "FOOTFALL_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    zero: bool = False  # a number may be 0 only where it says so, and its help says what 0 does:
    # elsewhere 0 would silently switch a limit off, or refuse everything

    @property
    def zero_allowed(self) -> bool:
        return self.type not in (int, float) or self.zero


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "store",
        str,
        "",
        "Where events and apps are stored: empty for the DuckDB file in --data, or"
        " clickhouse://[USER[:PASSWORD]@]HOST:PORT/DATABASE[?cluster=NAME] (docs/stores.md).",
    ),
    Setting(
        "accounts",
        str,
        "",
        "Where accounts, tokens and sessions are kept: empty for accounts.sqlite in --data, or "
        "postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE, shared by every collector of a shared store"
        " (docs/stores.md).",
    ),
    Setting("host", str, "127.0.0.1", "Address to listen on."),
    Setting("port", int, 8000, "Port to listen on; 0 picks a free one.", zero=True),
    Setting(
        "workers",
        int,
        1,
        "Processes serving the port: 1 owns the store and serves everything; each other one takes events "
        "and forwards the rest to it (docs/collector.md).",
    ),
    Setting("max_body_bytes", int, 512 * 1024, "Largest request body accepted, as sent."),
    Setting(
        "max_decompressed_bytes",
        int,
        4 * 1024 * 1024,
        "Largest request body accepted after gzip decompression.",
    ),
    Setting("max_events_per_batch", int, 500, "Most events in one native batch."),
    Setting("max_event_age_hours", int, 72, "Events older than this (client time) are rejected."),
    Setting(
        "retention_days",
        int,
        0,
        "Days raw events are kept (by event time; 0 keeps them all): the server deletes older ones every hour,"
        " and `footfall expire` at once.",
        zero=True,
    ),
    Setting("read_timeout_s", float, 10.0, "Seconds a client may take to send its request body."),
    Setting(
        "rate_per_client",
        float,
        20.0,
        "Requests per second per client address; 0 is unlimited. Loopback clients (this host) are exempt, "
        "unless listed in --trusted-proxies.",
        zero=True,
    ),
    Setting("burst_per_client", float, 200.0, "Requests a client address may send at once."),
    Setting(
        "rate_per_app",
        float,
        0.0,
        "Events per second per app (with --workers N, each process allows 1/N); 0 (the default) is "
        "unlimited: the log's backpressure bounds a flood. Set it to about 20 times an app's peak to keep "
        "one app from crowding out others.",
        zero=True,
    ),
    Setting("burst_per_app", float, 50000.0, "Events an app may receive at once."),
    Setting("forget_per_minute", float, 6.0, "Forget requests per minute per client address."),
    Setting(
        "bytes_per_app",
        float,
        0.0,
        "Request bytes (after decompression) per second per app (each of N processes allows 1/N); 0 (the default) is "
        "unlimited, as --rate-per-app.",
        zero=True,
    ),
    Setting("burst_bytes_per_app", float, 32.0 * 1024 * 1024, "Request bytes an app may receive at once."),
    Setting(
        "max_distinct_values",
        int,
        1000,
        "Distinct values kept per app and field (version, OS, event name...), the rest stored as 'other'; 0: no cap.",
        zero=True,
    ),
    Setting(
        "header_timeout_s",
        float,
        10.0,
        "Seconds a client may take to send a request's headers; 0 is unlimited.",
        zero=True,
    ),
    Setting(
        "keep_alive_s",
        float,
        5.0,
        "Seconds an idle keep-alive connection stays open; 0 closes each connection after its answer.",
        zero=True,
    ),
    Setting(
        "max_connections",
        int,
        1000,
        "Open connections (or requests in progress) beyond which requests get 503; 0 is unlimited.",
        zero=True,
    ),
    Setting(
        "max_log_bytes",
        int,
        1024 * 1024 * 1024,
        "Bytes of acknowledged events not yet stored at which the collector answers 503 (backpressure); "
        "0 is unlimited.",
        zero=True,
    ),
    Setting(
        "max_log_age_s",
        float,
        3600.0,
        "Age of the oldest acknowledged event not yet stored at which the collector answers 503; 0 is unlimited.",
        zero=True,
    ),
    Setting("trusted_proxies", str, "", "Comma-separated proxies whose X-Forwarded-For is used."),
    Setting(
        "public_url",
        str,
        "",
        "The URL users reach the server at, such as https://footfall.example.org; https makes cookies Secure.",
    ),
    Setting("geoip_db", str, "", "A MaxMind-format country database instead of the built-in table."),
    Setting(
        "public_epsilon",
        float,
        1.0,
        "Differential-privacy epsilon of one public release (one app, one day); see docs/privacy.md.",
    ),
    Setting("public_delta", float, 1e-6, "Differential-privacy delta of one public release."),
    Setting(
        "public_max_values_per_install",
        int,
        1,
        "Most values (versions, countries, ...) one install counts towards per public table.",
    ),
    Setting(
        "public_max_events_per_install_day",
        int,
        20,
        "Most events one install adds to a public count per day.",
    ),
    Setting(
        "public_max_events_per_install_window",
        int,
        100,
        "Most events one install adds to a public count per window (30, 90 or 365 days).",
    ),
    Setting(
        "logins_per_minute",
        float,
        10.0,
        "Login attempts per minute per client address; failures also back off per account.",
    ),
)


@dataclasses.dataclass(frozen=True)
class Settings:
    data: Path
    store: str = ""
    accounts: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_body_bytes: int = 512 * 1024
    max_decompressed_bytes: int = 4 * 1024 * 1024
    max_events_per_batch: int = 500
    max_event_age_hours: int = 72
    retention_days: int = 0
    read_timeout_s: float = 10.0
    rate_per_client: float = 20.0
    burst_per_client: float = 200.0
    rate_per_app: float = 0.0
    burst_per_app: float = 50000.0
    forget_per_minute: float = 6.0
    bytes_per_app: float = 0.0
    burst_bytes_per_app: float = 32.0 * 1024 * 1024
    max_distinct_values: int = 1000
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 1000
    max_log_bytes: int = 1024 * 1024 * 1024
    max_log_age_s: float = 3600.0
    trusted_proxies: str = ""
    public_url: str = ""
    geoip_db: str = ""
    public_epsilon: float = 1.0
    public_delta: float = 1e-6
    public_max_values_per_install: int = 1
    public_max_events_per_install_day: int = 20
    public_max_events_per_install_window: int = 100
    logins_per_minute: float = 10.0


def resolve_settings(data: Path, flags: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        value = flags.get(setting.name)
        if value is None and setting.env in env:
            raw = env[setting.env]
            try:
                value = setting.type(raw)
            except ValueError:
                raise UsageError(f"{setting.env}={raw!r} is not a valid {setting.type.__name__}") from None
        if value is None:
            value = setting.default
        if setting.type is float and not math.isfinite(value):
            raise UsageError(f"{setting.flag} must be a finite number")
        if setting.type in (int, float) and value < 0:
            raise UsageError(f"{setting.flag} must not be negative")
        values[setting.name] = value
    check_public_settings(
        values["public_epsilon"],
        values["public_delta"],
        values["public_max_values_per_install"],
        values["public_max_events_per_install_day"],
        values["public_max_events_per_install_window"],
    )
    for setting in SETTINGS:
        if values[setting.name] == 0 and not setting.zero_allowed:
            raise UsageError(f"{setting.flag} must be above 0: 0 does not turn this limit off")
    if values["workers"] > MAX_WORKERS:
        raise UsageError(f"--workers must be at most {MAX_WORKERS}")
    check_retention_days(values["retention_days"], "--retention-days")
    values["public_url"] = check_public_url(values["public_url"])
    values["store"] = check_store(values["store"])
    values["accounts"] = check_accounts(values["accounts"])
    return Settings(data=data, **values)


def check_retention_days(days: int, flag: str) -> int:
    if days > MAX_RETENTION_DAYS:
        raise UsageError(f"{flag} is at most {MAX_RETENTION_DAYS:,} days (a hundred years), not {days:,}")
    return days


STORE_SCHEMES = ("clickhouse://",)


def redacted_url(url: str) -> str:
    """`url` for a message or a log: any password in it replaced by ***."""
    scheme, slashes, rest = url.partition("//")  # the first "//": a password may hold another
    if not slashes:
        scheme, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{slashes}{userinfo.split(':', 1)[0]}:***@{host}"


def scrubbed(text: str, url: str) -> str:
    """`text` (a driver's error, which may quote the URL or its password) with the URL shown
    redacted and its password, as written or decoded, replaced by ***."""
    text = text.replace(url, redacted_url(url))
    userinfo = url.partition("//")[2].rpartition("@")[0]
    if ":" in userinfo:
        password = userinfo.split(":", 1)[1]
        for form in {password, urllib.parse.unquote(password)} - {""}:
            text = text.replace(form, "***")
    return text


def check_store(store: str) -> str:
    """A --store value: "" (the DuckDB file in --data) or a ClickHouse URL, or a UsageError."""
    if store and not store.startswith(STORE_SCHEMES):
        raise UsageError(
            "--store must be empty (DuckDB in --data) or clickhouse://[USER[:PASSWORD]@]HOST:PORT/DATABASE,"
            f" not {redacted_url(store)!r}"
        )
    return store


def resolve_store(flag: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The --store setting alone (flag, then FOOTFALL_STORE, then DuckDB), for the commands besides serve."""
    env = os.environ if environ is None else environ
    return check_store(flag if flag is not None else env.get("FOOTFALL_STORE", ""))


ACCOUNTS_SCHEMES = ("postgresql://", "postgres://")


def check_accounts(accounts: str) -> str:
    """An --accounts value: "" (accounts.sqlite in --data) or a PostgreSQL URL, or a UsageError."""
    if accounts and not accounts.startswith(ACCOUNTS_SCHEMES):
        raise UsageError(
            "--accounts must be empty (accounts.sqlite in --data) or postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE"
        )
    return accounts


def resolve_accounts(flag: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The --accounts setting alone (flag, then FOOTFALL_ACCOUNTS, then the SQLite file), for the CLI."""
    env = os.environ if environ is None else environ
    return check_accounts(flag if flag is not None else env.get("FOOTFALL_ACCOUNTS", ""))


def accounts_location(accounts: str, data: Path) -> Path | str:
    """What `AccountStore` opens for an --accounts setting: the URL, or the file in --data."""
    return accounts or data / "accounts.sqlite"


def check_public_settings(
    epsilon: float, delta: float, max_values: int, max_events_per_day: int, max_events_per_window: int
) -> None:
    """Differential privacy needs a positive budget and a bounded contribution (docs/privacy.md)."""
    if not 0 < epsilon <= 100:
        raise UsageError(f"--public-epsilon must be above 0 and at most 100, not {epsilon:g}")
    if not 0 < delta < 0.01:
        raise UsageError(f"--public-delta must be above 0 and below 0.01, not {delta:g}")
    if not 1 <= max_values <= 100:
        raise UsageError(f"--public-max-values-per-install must be between 1 and 100, not {max_values}")
    if not 1 <= max_events_per_day <= 100_000:
        raise UsageError(f"--public-max-events-per-install-day must be between 1 and 100000, not {max_events_per_day}")
    if not 1 <= max_events_per_window <= 10_000_000:
        raise UsageError(
            f"--public-max-events-per-install-window must be between 1 and 10000000, not {max_events_per_window}"
        )


def check_public_url(url: str) -> str:
    """`url` without a trailing slash, or a UsageError: http(s), a host, at most a path prefix."""
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise UsageError(
            f"--public-url {url!r} must be http(s)://HOST[:PORT][/PREFIX], such as https://footfall.example.org"
        )
    if parts.username is not None or parts.password is not None:
        raise UsageError("--public-url must not hold credentials")
    return url.rstrip("/")


def listening_url(host: str, port: int) -> str:
    """The URL of the address the server listens on, as reachable from that machine: the
    server file's, for the CLI to talk to a running server."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def absolute_url(settings: Settings, path: str, port: int | None = None) -> str:
    """`path` (starting with /) as a link to print or mail: under --public-url when it is set.

    Without it, the address the server listens on (`port` when the one bound differs from
    the setting, as with --port 0), which is right only on that machine.
    """
    if not path.startswith("/"):
        raise ValueError(f"{path!r} is not an absolute path")
    base = settings.public_url or listening_url(settings.host, settings.port if port is None else port)
    return base + path


def settings_markdown() -> str:
    """The settings table for docs/configuration.md; a test keeps the two equal."""
    lines = ["| Flag | Environment | Default | Meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        lines.append(f"| `{s.flag}` | `{s.env}` | `{s.default}` | {s.help} |")
    return "\n".join(lines) + "\n"
