"""Every report query, under every filter case of the contract, on the current ClickHouse engine
(chdb, in-process), on the contract's data: the same answers as the reference.

The store is the real `ClickHouseStore` with chdb behind its transport, so the SQL is exactly
what a ClickHouse server gets (18.16's runs in tests/contract on a real server). chdb is a test
dependency (pyproject's `test` extra), so this never skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from footfall.server.query import properties, reports
from footfall.server.stores.clickhouse import LOW_CARDINALITY, ClickHouseStore
from tests.clickhouse import ChdbTransport, ClickHouseServer
from tests.contract import reference
from tests.contract.data import QUERIED_APPS, generate
from tests.contract.test_contract import SEED, calls, check_everything, filter_cases, load, now_utc


@pytest.fixture
def chdb_store(tmp_path: Path) -> Iterator[tuple[ClickHouseStore, reference.Data]]:
    records = generate(SEED, now_utc(), size=120)
    store = ClickHouseStore("clickhouse://chdb:0/footfall", transport=ChdbTransport(tmp_path / "chdb"))
    try:
        load(store, records)
        yield store, reference.Data(records)
    finally:
        store.close()


@pytest.mark.timeout(900)  # thousands of queries through one in-process engine on a shared machine
def test_every_report_and_filter_on_chdb_matches_the_reference(
    chdb_store: tuple[ClickHouseStore, reference.Data],
) -> None:
    store, data = chdb_store
    assert not store.server_version.startswith("18.")  # a current engine, not Debian's
    cases = filter_cases()
    expected = sum(len(calls(data, app, case, n)) for n, (case, _) in enumerate(cases) for app in QUERIED_APPS)
    assert check_everything(store, data, cases) == expected
    assert {"properties", "compare"} <= set(properties.ARGUMENT_REPORTS) and "overview" in reports.REPORTS


def column_types(store: ClickHouseStore) -> dict[str, str]:
    rows = store.query_now(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'events'"
    ).rows
    return {str(name): str(kind) for name, kind in rows}


def test_a_current_server_gets_dictionary_encoded_columns_and_18_16_plain_strings(
    chdb_store: tuple[ClickHouseStore, reference.Data], clickhouse_server: ClickHouseServer
) -> None:
    """The version is detected: LowCardinality where the server has it without a setting
    (the reports above ran on those columns), String on Debian's 18.16."""
    current, _ = chdb_store
    assert current.layout.modern
    types = column_types(current)
    assert {types[column] for column in LOW_CARDINALITY} == {"LowCardinality(String)"}
    assert types["props"] == types["install"] == "String"
    old = ClickHouseStore(clickhouse_server.database())
    try:
        assert old.server_version.startswith("18.16") and not old.layout.modern
        assert {column_types(old)[column] for column in LOW_CARDINALITY} == {"String"}
    finally:
        old.close()
