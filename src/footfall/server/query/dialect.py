"""The few pieces of report SQL that differ between the engines, each written once per engine.

A report is written once, against `Dialect` (`dialect_of(store)`): plain SQL that both
engines share (SELECT, WHERE, GROUP BY and ORDER BY on aliases, CASE, coalesce, nullif,
subqueries in FROM, `$name` parameters) plus these functions for the rest. What ClickHouse
18.16 cannot do in SQL at all (window functions, QUALIFY, more than one JOIN per SELECT,
CTEs, positional ORDER BY, GROUP BY ALL) is not used: the report computes that step in
Python on a small grouped result, for both engines alike (docs/stores.md).

Times: `local(column, zone)` turns the stored UTC instant into the app's wall-clock time as
a *naive* timestamp (DuckDB: a TIMESTAMP; ClickHouse: a DateTime read as UTC), so every
truncation after it (day, hour, week, weekday) is the same plain calendar arithmetic on both.

Properties (the `props` JSON text): a property is named by a *key*, a SQL expression that
`key(name)` or a parameter holding `key_param(name)` gives. DuckDB reads JSON paths;
ClickHouse 18.16 has no JSON parser, so it uses `visitParamExtract*`, which expect the
compact JSON the collector writes and find a key at any depth: a nested object holding a
key of the same name, sorted before the top-level one, is read in its place (docs/stores.md).
"""

from __future__ import annotations

import dataclasses

from footfall.server.query.filters import UTC, check_timezone
from footfall.server.stores.base import EventStore

# A JSON string literal, or any other scalar token, inside a JSON array (ClickHouse's list reading).
_JSON_ELEMENT = r'"(?:[^"\\]|\\.)*"|[^\[\],\s]+'


def _json_text(raw: str) -> str:
    """ClickHouse: the text of the JSON value `raw` (a string unquoted and unescaped, anything else
    as written); NULL for JSON null or for nothing."""
    unquoted = f"visitParamExtractString(concat('{{\"v\":', {raw}, '}}'), 'v')"
    return f"multiIf({raw} IN ('', 'null'), NULL, startsWith({raw}, '\"'), {unquoted}, {raw})"


@dataclasses.dataclass(frozen=True)
class Dialect:
    name: str

    def string(self, text: str) -> str:
        """A string literal the engine reads back as `text` (ClickHouse's take backslash escapes)."""
        if self.name == "duckdb":
            return "'" + text.replace("'", "''") + "'"
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    # ---------------------------------------------------------------- times

    def local(self, column: str, timezone: str) -> str:
        """`column` (UTC) as the naive wall-clock time of `timezone` (checked before it is written)."""
        if timezone == UTC:
            return column
        zone = check_timezone(timezone)
        if self.name == "duckdb":
            return f"timezone('{zone}', {column} AT TIME ZONE 'UTC')"
        return f"toDateTime(toString({column}, '{zone}'), 'UTC')"

    def day(self, moment: str) -> str:
        """The date of a naive timestamp."""
        return f"CAST({moment} AS DATE)" if self.name == "duckdb" else f"toDate({moment}, 'UTC')"

    def hour_start(self, moment: str) -> str:
        return f"date_trunc('hour', {moment})" if self.name == "duckdb" else f"toStartOfHour({moment}, 'UTC')"

    def week_start(self, moment: str) -> str:
        """The date of the Monday of a naive timestamp's week."""
        if self.name == "duckdb":
            return f"CAST(date_trunc('week', {moment}) AS DATE)"
        return f"toMonday({moment}, 'UTC')"

    def weekday(self, moment: str) -> str:
        """1 = Monday ... 7 = Sunday."""
        return f"isodow({moment})" if self.name == "duckdb" else f"toDayOfWeek({moment})"  # a DateTime('UTC'): its zone

    def hour(self, moment: str) -> str:
        return f"hour({moment})" if self.name == "duckdb" else f"toHour({moment}, 'UTC')"

    # ---------------------------------------------------------------- aggregates and lists

    def count_if(self, condition: str) -> str:
        return f"count(*) FILTER (WHERE {condition})" if self.name == "duckdb" else f"countIf({condition})"

    def distinct(self, expression: str) -> str:
        """How many distinct non-NULL values: never NULL (ClickHouse's is NULL over no rows of a Nullable)."""
        if self.name == "duckdb":
            return f"count(DISTINCT {expression})"
        return f"ifNull(uniqExact({expression}), 0)"

    def arg_max(self, value: str, key: str) -> str:
        """`value` of the row with the greatest `key` (a tuple such as `(time, app_version)` breaks ties)."""
        return f"arg_max({value}, {key})" if self.name == "duckdb" else f"argMax({value}, {key})"

    def unnest(self, array: str) -> str:
        """One row per element of a list (in a SELECT list)."""
        return f"unnest({array})" if self.name == "duckdb" else f"arrayJoin({array})"

    def list_distinct(self, array: str) -> str:
        """The list's different non-NULL elements."""
        return f"list_distinct({array})" if self.name == "duckdb" else f"arrayDistinct({array})"

    def list_map(self, array: str, variable: str, body: str) -> str:
        if self.name == "duckdb":
            return f"list_transform({array}, lambda {variable}: {body})"
        return f"arrayMap({variable} -> {body}, {array})"

    def has(self, array: str, element: str) -> str:
        return f"list_contains({array}, {element})" if self.name == "duckdb" else f"has({array}, {element})"

    @property
    def join(self) -> str:
        """An inner join where each left row meets every matching right row (SQL's, ClickHouse's ALL)."""
        return "JOIN" if self.name == "duckdb" else "ALL INNER JOIN"

    # ---------------------------------------------------------------- properties

    def key_param(self, name: str) -> str:
        """The value a parameter holds to name property `name` as a key."""
        if self.name == "duckdb":
            return '$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return name

    def key(self, name: str) -> str:
        """A literal key naming property `name`."""
        return self.string(self.key_param(name))

    def _raw(self, key: str) -> str:  # ClickHouse: the value's JSON text, '' when missing
        return f"visitParamExtractRaw(props, {key})"

    def prop_text(self, key: str) -> str:
        """The property as text (a string unquoted, a number or boolean as written, a list or
        object as JSON); NULL when missing or JSON null."""
        if self.name == "duckdb":
            return f"json_extract_string(props, {key})"

        return _json_text(self._raw(key))

    def prop_present(self, key: str) -> str:
        """The property is there and not JSON null."""
        if self.name == "duckdb":
            return f"coalesce(json_type(json_extract(props, {key})) <> 'NULL', false)"
        return f"{self._raw(key)} NOT IN ('', 'null')"

    def prop_is_list(self, key: str) -> str:
        if self.name == "duckdb":
            return f"coalesce(json_type(json_extract(props, {key})) = 'ARRAY', false)"
        return f"startsWith({self._raw(key)}, '[')"

    def prop_is_scalar(self, key: str) -> str:
        """A string, number or boolean (not missing, null, a list or an object)."""
        if self.name == "duckdb":
            return f"coalesce(json_type(json_extract(props, {key})) NOT IN ('ARRAY', 'OBJECT', 'NULL'), false)"
        raw = self._raw(key)
        return f"NOT ({raw} IN ('', 'null') OR startsWith({raw}, '[') OR startsWith({raw}, '{{'))"

    def prop_number(self, key: str) -> str:
        """The property as a double when it is a JSON number, else NULL."""
        if self.name == "duckdb":
            j = f"json_extract(props, {key})"
            return f"CASE WHEN json_type({j}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN CAST({j} AS DOUBLE) END"
        return f"toFloat64OrNull({self._raw(key)})"

    def prop_list(self, key: str) -> str:
        """A list property's elements as text (as `prop_text` reads each); use under `prop_is_list`."""
        if self.name == "duckdb":
            return f"json_extract_string(json_extract(props, {key}), '$[*]')"
        return f"arrayMap(e -> {_json_text('e')}, extractAll({self._raw(key)}, {self.string(_JSON_ELEMENT)}))"

    def prop_keys(self) -> str:
        """The property names of `props`, as a list (ClickHouse 18.16: nested objects' names too)."""
        if self.name == "duckdb":
            return "json_keys(props)"
        return "extractAll(props, " + self.string(r'"((?:[^"\\]|\\.)*)":') + ")"

    def prop_pairs(self, where: str, pattern: str) -> str:
        """A subquery of (key, value): each property of the events matching `where` whose name
        matches the regular expression `pattern` (a constant), with its value as `prop_text` reads it."""
        if self.name == "duckdb":
            return (
                "SELECT key, json_extract_string(props, '$.\"' || key || '\"') AS value FROM"
                f" (SELECT props, unnest(json_keys(props)) AS key FROM events WHERE {where})"
                f" WHERE regexp_full_match(key, {self.string(pattern)})"
            )
        pair = f'"{pattern}":(?:"(?:[^"\\\\]|\\\\.)*"|[^,}}\\]]*)'
        key = 'extract(pair, \'^"([^"]*)"\')'
        raw = f"substring(pair, length({key}) + 4)"
        return (
            f"SELECT {key} AS key, {_json_text(raw)} AS value FROM"
            f" (SELECT arrayJoin(extractAll(props, {self.string(pair)})) AS pair FROM events WHERE {where})"
        )


DUCKDB = Dialect("duckdb")
CLICKHOUSE = Dialect("clickhouse")
DIALECTS = {dialect.name: dialect for dialect in (DUCKDB, CLICKHOUSE)}


def dialect_of(store: EventStore) -> Dialect:
    return DIALECTS[store.dialect]
