"""How the CLI reaches the data while `footfall serve` owns it.

DuckDB lets only one process open the database file. So a running server writes
DIR/server.json with its pid and URL, and the CLI, finding a live server there,
calls the server's HTTP API with the local admin token (`RemoteOperations`).
With no server running, the CLI opens the store itself (`StoreOperations`). Either
way the same operations run inside one process that owns the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from footfall.server.datadir import DataDir
from footfall.server.errors import FootfallError, NotFound, StoreUnavailable, UsageError
from footfall.server.ingest.schemas import parse_schema
from footfall.server.operations import Operations, StoreOperations
from footfall.server.query.public import PublicPolicy

SERVER_STARTUP_WAIT_S = 5.0  # how long to wait for a server that is still starting
REMOTE_TIMEOUT_S = 60.0


class RemoteOperations:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._token = token

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=REMOTE_TIMEOUT_S) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                try:
                    error = json.loads(exc.read())["error"]
                    code, message = str(error["code"]), str(error["message"])
                except (ValueError, KeyError, TypeError):
                    code, message = "http_error", f"the server answered {exc.code}"
            kind = {400: UsageError, 403: UsageError, 404: NotFound}.get(exc.code, FootfallError)
            raise kind(message, code=code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise StoreUnavailable(f"the server at {self.url} does not answer: {exc}") from None

    def add_app(
        self,
        name: str,
        ga_tids: Sequence[str] = (),
        ga4: Sequence[tuple[str, str]] = (),
        firebase: Sequence[tuple[str, str]] = (),
        influx: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "ga_tids": list(ga_tids),
            "ga4": [{"measurement_id": m, "api_secret": s} for m, s in ga4],
            "firebase": [{"app_id": a, "api_secret": s} for a, s in firebase],
            "influx": [{"token": t, "bucket": b} for t, b in influx],
        }
        result: dict[str, Any] = self._call("POST", "/api/v1/apps", body)
        return result

    def set_schema(self, app: str, schema: str) -> dict[str, Any]:
        parse_schema(schema)  # a mistake is reported here, before anything is sent
        path = f"/api/v1/apps/{urllib.parse.quote(app, safe='')}/schema"
        result: dict[str, Any] = self._call("PUT", path, json.loads(schema))
        return result

    def set_timezone(self, app: str, timezone: str) -> dict[str, Any]:
        path = f"/api/v1/apps/{urllib.parse.quote(app, safe='')}/timezone"
        result: dict[str, Any] = self._call("PUT", path, {"timezone": timezone})
        return result

    def list_apps(self) -> list[dict[str, Any]]:
        apps: list[dict[str, Any]] = self._call("GET", "/api/v1/apps")["apps"]
        return apps

    def report(self, app: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
        query = urllib.parse.urlencode(params, doseq=True)  # a repeated `where` is a list
        result: dict[str, Any] = self._call(
            "GET", f"/api/v1/apps/{urllib.parse.quote(app, safe='')}/reports/{name}?{query}"
        )
        return result

    def public_snapshot(self, app: str, policy: PublicPolicy, folder: Path) -> dict[str, Any]:
        # The running server serves today's snapshot under its own settings and data directory.
        result: dict[str, Any] = self._call("GET", f"/api/v1/apps/{urllib.parse.quote(app, safe='')}/public")
        return result

    def summary(self, app: str, days: int, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        query = urllib.parse.urlencode({"days": days, **(params or {})}, doseq=True)
        path = f"/api/v1/apps/{urllib.parse.quote(app, safe='')}/summary?{query}"
        result: dict[str, Any] = self._call("GET", path)
        return result

    def remove_app(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/api/v1/apps/{urllib.parse.quote(name, safe='')}")
        return result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def find_server(datadir: DataDir) -> str | None:
    """The URL of the live server that owns `datadir`, or None when none runs."""
    info = datadir.read_server_file()
    if info is None:
        return None
    pid = info.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        datadir.server_file.unlink(missing_ok=True)  # left behind by a killed server
        return None
    url: str = info["url"]
    deadline = time.monotonic() + SERVER_STARTUP_WAIT_S
    while not _healthy(url):
        if time.monotonic() > deadline:
            raise StoreUnavailable(f"footfall serve (process {pid}) owns {datadir.path} but does not answer at {url}")
        time.sleep(0.1)
    return url


def local_accounts(args: Any, datadir: DataDir) -> Path | str:
    """What a command's `AccountStore` opens: its --accounts (or FOOTFALL_ACCOUNTS) URL, or
    the SQLite file in its data directory."""
    from footfall.server.settings import accounts_location, resolve_accounts

    return accounts_location(resolve_accounts(getattr(args, "accounts", None)), datadir.path)


def refuse_the_migrated_file(datadir: DataDir, store_url: str, chosen: bool) -> None:
    """After `footfall migrate`, DIR's DuckDB file holds the past: a command that reads or serves
    it only because no store was named would look current and split the data. Naming one
    (`--store URL`, or `--store ''` for the file itself, or FOOTFALL_STORE) goes ahead."""
    if store_url or chosen:
        return
    target = datadir.migration().get("target")
    if target:
        raise UsageError(
            f"{datadir.path} was migrated to {target}: pass --store with that URL (or FOOTFALL_STORE), or"
            " --store '' to use the DuckDB file as it was before the migration"
        )


def store_chosen(flag: str | None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a store was named at all: --store (even empty), or a FOOTFALL_STORE that is not
    empty (an environment file's `FOOTFALL_STORE=` template line names nothing)."""
    return flag is not None or bool((os.environ if environ is None else environ).get("FOOTFALL_STORE"))


@contextlib.contextmanager
def open_operations(
    datadir: DataDir, store_url: str = "", accounts_at: Path | str = "", chosen: bool = True
) -> Iterator[Operations]:
    """The running server's operations, or the store's own (`store_url`: the --store setting,
    `chosen` whether it was named; `accounts_at`: what `AccountStore` opens, by default the file
    in the data directory)."""
    url = find_server(datadir)
    if url is not None:
        yield RemoteOperations(url, datadir.secrets().admin_token)
        return
    refuse_the_migrated_file(datadir, store_url, chosen)
    from footfall.server.auth.accounts import AccountStore
    from footfall.server.ingest.log import IngestLog
    from footfall.server.settings import Settings
    from footfall.server.stores import open_store

    datadir.create()
    store = open_store(store_url, datadir.database)
    # Events a stopped server acknowledged but did not load yet are loaded first, so reports are whole.
    settings = Settings(data=datadir.path)
    ingest_log = IngestLog(datadir.log, store, settings.max_log_bytes, settings.max_log_age_s)
    store.barrier = ingest_log.catch_up
    accounts = AccountStore(accounts_at or datadir.path / "accounts.sqlite")
    try:
        yield StoreOperations(store, accounts, data=datadir.path, log=ingest_log)
    finally:
        accounts.close()
        ingest_log.close()
        store.close()
