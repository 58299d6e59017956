"""InfluxDB line protocol: Homebrew's own curl requests, the official influxdb-client, partial
writes, InfluxDB's answers, the parser's grammar, and install counts per package.

What is stored, what the store's registry refuses and the install counts are tested on each store
(`on_every_store`); the limits, precisions, backpressure (nothing is loaded: the store fails
throughout) and the parser, where the store plays no part, on DuckDB only (or on none).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from footfall.server.ingest.protocols import influx
from footfall.server.operations import StoreOperations
from tests.conftest import InThreadServer
from tests.stores import FlakyStore, on_every_store

APP = "brewlike"
TOKEN = "iVdsgJ_OjvTYGAA79gOfWlA_fX0QCuj4eYUNdb-test-token=="  # shaped like Homebrew's, not Homebrew's
BUCKET = "analytics"
V1_TOKEN = "a-1.x-password-used-as-token"
V1_DB = "telemetry"


@pytest.fixture
def influx_server(app_server: InThreadServer) -> InThreadServer:
    operations = StoreOperations(app_server.store)
    operations.add_app(APP, influx=[(TOKEN, BUCKET), (V1_TOKEN, V1_DB)])
    return app_server


def stored(server: InThreadServer, app: str = APP) -> list[dict[str, Any]]:
    rows = server.store.query(
        f"SELECT name, install, session, props, source, time, country FROM events WHERE app = '{app}' ORDER BY time"
    ).dicts()
    for row in rows:
        row["props"] = json.loads(row["props"])
    return rows


def write(
    server: InThreadServer, body: bytes | str, token: str = TOKEN, headers: dict[str, str] | None = None, **query: str
) -> httpx.Response:
    params = {"bucket": BUCKET, "precision": "s", **query}
    content = body.encode() if isinstance(body, str) else body
    all_headers = {"Authorization": f"Token {token}", **(headers or {})}
    return httpx.post(server.url + "/api/v2/write", params=params, content=content, headers=all_headers)


def curl() -> str:
    found = shutil.which("curl")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl is required under CI (apt-get install curl)")
        pytest.skip("curl is not installed (apt-get install curl)")
    return found


def homebrew_curl(server: InThreadServer, line: str) -> str:
    """Homebrew's request, argument for argument (Library/Homebrew/utils/analytics.rb, report_influx and
    deferred_curl, InfluxDB Cloud version), plus --write-out to see the status Homebrew throws away."""
    url = f"{server.url}/api/v2/write?bucket={BUCKET}&precision=s"
    args = [
        "--max-time", "3",
        "--header", f"Authorization: Token {TOKEN}",
        "--header", "Content-Type: text/plain; charset=utf-8",
        "--header", "Accept: application/json",
        "--data-binary", line,
    ]  # fmt: skip
    done = subprocess.run(
        [curl(), *args, "--silent", "--output", "/dev/null", "--write-out", "%{http_code}", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout


def homebrew_tags(tags: dict[str, Any]) -> str:
    """Homebrew's tag set: values as text, with space, comma and equals sign escaped."""
    escaped = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in tags.items()}
    return ",".join(f"{k}=" + v.replace(" ", "\\ ").replace(",", "\\,").replace("=", "\\=") for k, v in escaped.items())


def homebrew_fields(fields: dict[str, Any]) -> str:
    """Homebrew's field set: every value quoted, none escaped."""
    return ",".join(f'{k}="{v}"' for k, v in fields.items() if v is not None)


@on_every_store
def test_homebrew_command_run_replayed_with_curl(influx_server: InThreadServer) -> None:
    tags = {"command": "install", "ci": False, "devcmdrun": False, "developer": False,
            "env_config": "HOMEBREW_NO_AUTO_UPDATE", "env_config_state": "unset"}  # fmt: skip
    line = f"command_run,{homebrew_tags(tags)} {homebrew_fields({'options': '--cask --force'})} {int(time.time())}"
    assert homebrew_curl(influx_server, line) == "204"
    (row,) = stored(influx_server)
    assert row["name"] == "command_run" and row["source"] == "influx"
    assert row["install"] == "" and row["session"] == ""  # Homebrew sends no id: counts, not installs
    assert row["props"] == {
        "command": "install",
        "ci": "false",
        "devcmdrun": "false",
        "developer": "false",
        "env_config": "HOMEBREW_NO_AUTO_UPDATE",
        "env_config_state": "unset",
        "options": "--cask --force",
    }


@on_every_store
def test_homebrew_formula_install_replayed_with_curl(influx_server: InThreadServer) -> None:
    tags = {"ci": False, "prefix": "/home/linuxbrew/.linuxbrew", "default_prefix": True, "developer": False,
            "devcmdrun": False, "arch": "x86_64", "os": "Linux [WSL]", "on_request": True}  # fmt: skip
    fields = {"version": "4.4.9", "os_name_and_version": "Ubuntu 24.04 [WSL]", "package": "wget",
              "tap_name": "homebrew/core", "options": None}  # fmt: skip
    line = f"formula_install,{homebrew_tags(tags)} {homebrew_fields(fields)} {int(time.time())}"
    assert "os=Linux\\ [WSL]" in line  # the escaped space the issue asks for
    assert homebrew_curl(influx_server, line) == "204"
    (row,) = stored(influx_server)
    assert row["name"] == "formula_install"
    props = row["props"]
    assert props["os"] == "Linux [WSL]" and props["os_name_and_version"] == "Ubuntu 24.04 [WSL]"
    assert props["package"] == "wget" and props["tap_name"] == "homebrew/core" and props["on_request"] == "true"
    assert "prefix" not in props  # the safety net drops a file path, as from every protocol
    assert (
        influx_server.metric("footfall_properties_dropped_total", protocol="influx", reason="sensitive_file_path") == 1
    )


@on_every_store
def test_influxdb_client_v2_write_api(influx_server: InThreadServer) -> None:
    from influxdb_client import InfluxDBClient, Point, WritePrecision
    from influxdb_client.client.write_api import SYNCHRONOUS

    with InfluxDBClient(url=influx_server.url, token=TOKEN, org="my-org") as client:
        writer = client.write_api(write_options=SYNCHRONOUS)
        point = (
            Point("formula_install")
            .tag("os", "Macintosh")
            .tag("arch", "arm64")
            .field("package", 'say "hi", x=1')
            .field("count", 3)
            .field("ratio", 0.5)
            .field("cached", True)
            .time(time.time_ns(), WritePrecision.NS)
        )
        writer.write(bucket=BUCKET, record=[point, 'command_run,command=list options="" '])
    rows = {r["name"]: r for r in stored(influx_server)}  # one second: ClickHouse keeps no order within it
    assert sorted(rows) == ["command_run", "formula_install"]
    assert rows["formula_install"]["props"] == {
        "os": "Macintosh",
        "arch": "arm64",
        "package": 'say "hi", x=1',
        "count": 3,
        "ratio": 0.5,
        "cached": True,
    }


@on_every_store
def test_influxdb_client_against_the_1x_compatibility_it_offers(influx_server: InThreadServer) -> None:
    """influxdb-client reaches InfluxDB 1.8 through /api/v2/write with token "USER:PASSWORD" and
    bucket "DATABASE/RETENTION_POLICY" (its documented 1.x path); it has no /write client."""
    from influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS

    with InfluxDBClient(url=influx_server.url, token=f"someone:{V1_TOKEN}", org="-") as client:
        client.write_api(write_options=SYNCHRONOUS).write(bucket=f"{V1_DB}/autogen", record="cask_install,os=mac n=1i")
    (row,) = stored(influx_server)
    assert row["name"] == "cask_install" and row["props"] == {"os": "mac", "n": 1}


@on_every_store
@pytest.mark.parametrize(
    "how",
    ["query", "basic"],
)
def test_the_1x_write_endpoint_as_influxdb_1x_documents_it(influx_server: InThreadServer, how: str) -> None:
    url = f"{influx_server.url}/write?db={V1_DB}&precision=ms"
    credentials = ["--user", f"me:{V1_TOKEN}"] if how == "basic" else []
    if how == "query":
        url += f"&u=me&p={V1_TOKEN}"
    line = f'build_error,arch=arm64 package="jq" {int(time.time() * 1000)}'
    done = subprocess.run(
        [curl(), "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-XPOST", *credentials, url, "--data-binary", line],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.stdout == "204"
    assert [r["props"] for r in stored(influx_server)] == [{"arch": "arm64", "package": "jq"}]


@on_every_store
def test_a_partial_write_stores_the_valid_lines_and_names_the_bad_ones(influx_server: InThreadServer) -> None:
    now = int(time.time())
    body = "\n".join(
        [
            "# a comment, then a blank line",
            "",
            f"command_run,command=a n=1i {now}",
            f"command_run,command=b n=oops {now}",
            f"command_run,command=c n=3i {now}",
            "Bad-Name n=1i",
            f"command_run,command=d n=4i {now - 10 * 24 * 3600}",
        ]
    )
    answer = write(influx_server, body)
    assert answer.status_code == 400
    error = answer.json()
    assert error["code"] == "invalid"
    assert "line 4:" in error["message"] and "line 6:" in error["message"] and "line 7:" in error["message"]
    assert "line 3:" not in error["message"] and "line 5:" not in error["message"]
    assert "2 stored" in error["message"]
    assert sorted(r["props"]["command"] for r in stored(influx_server)) == ["a", "c"]
    assert influx_server.metric("footfall_events_rejected_total", protocol="influx", reason="invalid_line") == 3


@on_every_store
def test_unknown_token_or_bucket_is_401_and_counted(influx_server: InThreadServer) -> None:
    answers = [
        write(influx_server, "command_run n=1i", token="no-such-token-at-all"),
        write(influx_server, "command_run n=1i", bucket="other"),
        write(influx_server, "command_run n=1i", headers={"Authorization": "Basic !!not-base64"}),
        httpx.post(influx_server.url + "/api/v2/write?bucket=analytics", content="command_run n=1i"),
        httpx.post(f"{influx_server.url}/write?db={V1_DB}&u=me&p=wrong", content="command_run n=1i"),
    ]
    for answer in answers:
        assert answer.status_code == 401
        assert answer.json()["code"] == "unauthorized"
    assert stored(influx_server) == []
    assert influx_server.metric("footfall_events_rejected_total", protocol="influx", reason="unknown_token") == 5


@on_every_store
def test_a_token_without_a_bucket_takes_any_bucket(influx_server: InThreadServer) -> None:
    StoreOperations(influx_server.store).add_app("anybucket", influx=[("a-token-for-every-bucket", "*")])
    for bucket in ("one", "two"):
        assert (
            write(influx_server, "command_run n=1i", token="a-token-for-every-bucket", bucket=bucket).status_code == 204
        )
    assert len(stored(influx_server, "anybucket")) == 2


def test_over_the_size_cap_is_413_in_influxdb_s_shape(app_server_factory: Any) -> None:
    server = app_server_factory(max_body_bytes=1024, max_decompressed_bytes=4096)
    StoreOperations(server.store).add_app(APP, influx=[(TOKEN, BUCKET)])
    big = ("command_run n=1i\n" * 100).encode()
    answer = write(server, big)
    assert answer.status_code == 413 and answer.json()["code"] == "request too large"
    bomb = gzip.compress(b"command_run n=1i\n" * 1000)  # small on the wire, past the decompressed cap
    assert len(bomb) < 1024
    answer = write(server, bomb, headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 413 and answer.json()["code"] == "request too large"
    assert stored(server) == []


def test_rate_limits_answer_429_in_influxdb_s_shape(app_server_factory: Any) -> None:
    # This host is not limited per client: the client is a remote address behind a trusted proxy.
    server = app_server_factory(rate_per_client=0.01, burst_per_client=1, trusted_proxies="127.0.0.1/32")
    StoreOperations(server.store).add_app(APP, influx=[(TOKEN, BUCKET)])
    remote = {"X-Forwarded-For": "203.0.113.7"}
    assert write(server, "command_run n=1i", headers=remote).status_code == 204
    answer = write(server, "command_run n=2i", headers=remote)
    assert answer.status_code == 429 and answer.json()["code"] == "too many requests"
    assert int(answer.headers["retry-after"]) >= 1


def test_backpressure_answers_503_and_nothing_is_acknowledged(app_server_factory: Any, tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "flaky.duckdb")
    server: InThreadServer = app_server_factory(store=store, max_log_bytes=600)
    StoreOperations(store).add_app(APP, influx=[(TOKEN, BUCKET)])
    store.failing = True
    answers = [write(server, f"command_run n={n}i") for n in range(6)]
    assert answers[0].status_code == 204 and answers[-1].status_code == 503
    assert answers[-1].json()["code"] == "unavailable" and int(answers[-1].headers["retry-after"]) >= 1
    refused = sum(answer.status_code == 503 for answer in answers)
    assert server.metric("footfall_events_rejected_total", protocol="influx", reason="backpressure") == refused
    assert server.metric("footfall_events_accepted_total", protocol="influx") == len(answers) - refused


@on_every_store
def test_gzip_bodies_are_accepted(influx_server: InThreadServer) -> None:
    body = gzip.compress(b"command_run,command=a n=1i\ncommand_run,command=b n=2i\n")
    assert write(influx_server, body, headers={"Content-Encoding": "gzip"}).status_code == 204
    assert sorted(r["props"]["command"] for r in stored(influx_server)) == ["a", "b"]
    answer = write(influx_server, b"not gzip", headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 400 and answer.json()["code"] == "invalid"


@pytest.mark.parametrize(
    ("precision", "scale"),
    [("ns", 1_000_000_000), ("us", 1_000_000), ("ms", 1_000), ("s", 1), (None, 1_000_000_000)],
)
def test_precisions(influx_server: InThreadServer, precision: str | None, scale: int) -> None:
    moment = int(time.time()) - 3600  # an hour ago, to the second
    query = {"precision": precision} if precision else {}
    params = {"bucket": BUCKET, **query}
    answer = httpx.post(
        influx_server.url + "/api/v2/write",
        params=params,
        content=f"command_run n=1i {moment * scale}",
        headers={"Authorization": f"Token {TOKEN}"},
    )
    assert answer.status_code == 204, answer.text
    (row,) = stored(influx_server)
    assert int(row["time"].timestamp()) == moment


def test_a_bad_precision_or_missing_bucket_is_400(influx_server: InThreadServer) -> None:
    answer = write(influx_server, "command_run n=1i", precision="h")  # 1.x only
    assert answer.status_code == 400 and answer.json()["code"] == "invalid"
    StoreOperations(influx_server.store).add_app("anybucket", influx=[("a-token-for-every-bucket", "*")])
    answer = write(influx_server, "command_run n=1i", token="a-token-for-every-bucket", bucket="")
    assert answer.status_code == 400 and "bucket" in answer.json()["message"]


@on_every_store
def test_the_app_s_schema_applies(influx_server: InThreadServer) -> None:
    StoreOperations(influx_server.store).set_schema(
        APP, json.dumps({"events": {"formula_install": {"package": {"type": "identifier"}}}})
    )
    body = 'formula_install,os=mac package="wget"\ncommand_run options=""'
    assert write(influx_server, body).status_code == 204  # dropped by the schema, as InfluxDB would have kept it
    assert [(r["name"], r["props"]) for r in stored(influx_server)] == [("formula_install", {"package": "wget"})]
    assert influx_server.metric("footfall_events_rejected_total", protocol="influx", reason="undeclared_event") == 1


def test_the_client_address_becomes_a_country_and_is_not_stored(influx_server: InThreadServer) -> None:
    assert write(influx_server, "command_run n=1i").status_code == 204
    (row,) = stored(influx_server)
    assert "127.0.0.1" not in json.dumps(row, default=str)


# -- the parser, against the grammar ----------------------------------------------


@pytest.mark.parametrize(
    ("line", "measurement", "tags", "fields", "timestamp"),
    [
        ("m f=1", "m", {}, {"f": 1.0}, None),
        ("m,t=v f=1i 123", "m", {"t": "v"}, {"f": 1}, 123),
        ("m f=-1i,g=18446744073709551615u", None, None, None, None),  # past int64: refused below
        ("m f=9223372036854775807u", "m", {}, {"f": 2**63 - 1}, None),
        ("m f=-9223372036854775808i", "m", {}, {"f": -(2**63)}, None),
        ("m f=1.5e3,g=-.5,h=+2.", "m", {}, {"f": 1500.0, "g": -0.5, "h": 2.0}, None),
        ("m a=t,b=T,c=true,d=True,e=TRUE", "m", {}, dict.fromkeys("abcde", True), None),
        ("m a=f,b=F,c=false,d=False,e=FALSE", "m", {}, dict.fromkeys("abcde", False), None),
        (r"my\ event\,x f=1", None, None, None, None),  # not a lowercase identifier once unescaped
        (r"m,t=a\ b\,c\=d f=1", "m", {"t": "a b,c=d"}, {"f": 1.0}, None),
        (
            r'm s="a \"quoted\" \\ back\slash, with = and spaces"',
            "m",
            {},
            {"s": 'a "quoted" \\ back\\slash, with = and spaces'},
            None,
        ),
        ('m s="",t="x" -42', "m", {}, {"s": "", "t": "x"}, -42),
        ("m f=1   ", "m", {}, {"f": 1.0}, None),
        ("m  f=1 1", "m", {}, {"f": 1.0}, 1),
    ],
)
def test_the_grammar(
    line: str,
    measurement: str | None,
    tags: dict[str, str] | None,
    fields: dict[str, Any] | None,
    timestamp: int | None,
) -> None:
    if measurement is None:
        with pytest.raises(influx.LineError):
            influx.parse_line(line)
        return
    point = influx.parse_line(line)
    assert (point.measurement, point.tags, point.fields, point.timestamp) == (measurement, tags, fields, timestamp)
    for key, value in (fields or {}).items():
        assert type(point.fields[key]) is type(value)


@pytest.mark.parametrize(
    "line",
    [
        "m",
        "m ",
        "m,t f=1",
        "m,t= f=1",
        "m f=",
        'm f="unterminated',
        "m f=1 12x",
        "m f=1 1 2",
        "m f=nan",
        "m f=inf",
        "m f=1e400",
        "m f=1_000",
        "m f=9223372036854775808i",
        "m f=18446744073709551616u",
        "m f=yes",
        "m,Tag=v f=1",
        "m F=1",
        "m f=1\\",
        "m f=1 99999999999999999999",
    ],
)
def test_malformed_lines_are_refused(line: str) -> None:
    with pytest.raises(influx.LineError):
        influx.parse_line(line)


def test_limits_bound_every_line() -> None:
    with pytest.raises(influx.LineError, match="longer"):
        influx.parse_line("m s=" + "x" * (influx.MAX_LINE_CHARS + 1))
    fields = ",".join(f"f{i}=1" for i in range(influx.MAX_KEYS_PER_LINE + 1))
    with pytest.raises(influx.LineError, match="at most"):
        influx.parse_line("m " + fields)
    with pytest.raises(influx.LineError, match="longer"):
        influx.parse_line(f'm s="{"x" * (influx.MAX_VALUE_CHARS + 1)}"')
    with pytest.raises(influx.LineError, match="lines per request"):
        influx.parse_body(b"m f=1\n" * (influx.MAX_LINES + 1))
    parsed = influx.parse_body(b"\n" * (influx.MAX_LINES * 2) + b"m f=1")  # blank lines do not count
    assert len(parsed.points) == 1


def test_lines_not_utf8_are_refused_one_by_one() -> None:
    parsed = influx.parse_body(b'm f=1\nm s="\xff"\r\n  m f=2\r\n')
    assert [number for number, _ in parsed.points] == [1, 3]
    assert parsed.errors == [(2, "the line is not UTF-8")]


KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=30)
VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    TEXT,
)


# A backslash before a comma, equals sign or space cannot be told from an escape in a tag value
# (the grammar's own limit), so generated tag values hold no backslash.
TAG_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\\"), min_size=1, max_size=30)


def escape_tag(text: str) -> str:
    return text.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@given(
    tags=st.dictionaries(KEYS, TAG_TEXT, max_size=5),
    fields=st.dictionaries(KEYS, VALUES, min_size=1, max_size=5),
    timestamp=st.one_of(st.none(), st.integers(-(10**18), 10**18)),
)
@settings(max_examples=300, deadline=None)
def test_what_a_client_writes_parses_back(tags: dict[str, str], fields: dict[str, Any], timestamp: int | None) -> None:
    """Round trip: a line written by the grammar's rules reads back to the same point."""
    tags = {k: v for k, v in tags.items() if k not in fields}
    tag_set = "".join(f",{k}={escape_tag(v)}" for k, v in tags.items())
    field_set = ",".join(f"{k}={render(v)}" for k, v in fields.items())
    line = f"command_run{tag_set} {field_set}" + ("" if timestamp is None else f" {timestamp}")
    point = influx.parse_line(line)
    assert point.tags == tags
    assert point.fields == fields
    assert point.timestamp == timestamp


NEAR_LINES = st.from_regex(
    r"[a-z\\ ,=]{1,6}(,[a-z\\]{1,3}=[^\n]{0,5}){0,2} +[a-z]{1,3}=[-+0-9.eEiutrfTF\"\\, ]{0,8}( +-?[0-9]{0,21})? *",
    fullmatch=True,
)  # close to the grammar, so that the parser's every branch is reached


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode) | NEAR_LINES.map(str.encode))
@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_parser_raises_nothing_but_its_own_error(body: bytes) -> None:
    try:
        parsed = influx.parse_body(body)
    except influx.LineError:
        return
    received = dt.datetime(2026, 12, 1)
    for _, point in parsed.points:
        assert influx.EVENT_NAME_PATTERN.match(point.measurement)
        for precision_ns in influx.PRECISION_NS_V1.values():
            try:
                moment = influx.point_time(point, precision_ns, received, dt.timedelta(hours=72))
            except influx.LineError:
                continue
            assert influx.to_incoming(point, APP, moment, "").time == moment


def test_parsing_is_linear_in_hostile_input() -> None:
    """Backslashes, quotes and separators that could make a backtracking parser explode.
    Bound generous (a shared, slow machine): 100 ms for 16 KiB lines that take about 1 ms."""
    hostile = [
        "m " + "a\\" * 8000,
        'm s="' + '\\"' * 8000,
        "m," + "t=v," * 4000,
        "m " + "f=1," * 4000,
        "m" + "\\ " * 8000 + " f=1",
    ]
    for line in hostile:
        started = time.perf_counter()
        with pytest.raises(influx.LineError):
            influx.parse_line(line)
        assert time.perf_counter() - started < 0.1, line[:20]


# -- reports: install counts per package, like formulae.brew.sh ----------------------


@on_every_store
def test_install_counts_per_package_over_30_90_365_days(app_server_factory: Any) -> None:
    """A Homebrew-style tool reads installs per package over 30, 90 and 365 days through the
    Properties breakdown. Events are as old as a year, so the server keeps 400 days here."""
    server: InThreadServer = app_server_factory(max_event_age_hours=400 * 24)
    StoreOperations(server.store).add_app(APP, influx=[(TOKEN, BUCKET)])
    now = int(time.time())
    day = 24 * 3600
    ages = {"wget": [1, 10, 25, 50, 80, 150, 300, 380], "jq": [2, 60, 61, 200], "git": [5, 5, 5, 370]}
    lines = [
        f'formula_install,os=Macintosh,on_request=true package="{package}",tap_name="homebrew/core" {now - age * day}'
        for package, package_ages in ages.items()
        for age in package_ages
    ]
    assert write(server, "\n".join(lines)).status_code == 204
    headers = {"Authorization": f"Bearer {server.token}"}
    for days in (30, 90, 365):
        answer = httpx.get(
            f"{server.url}/api/v1/apps/{APP}/properties",
            params={"event": "formula_install", "property": "package", "days": days},
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        counts = {row["value"]: row["events"] for row in answer.json()["rows"]}
        expected = {p: sum(1 for age in a if age < days) for p, a in ages.items()}
        assert counts == {p: n for p, n in expected.items() if n}, days
