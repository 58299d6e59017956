from __future__ import annotations

import pytest

import footfall
from footfall.schema import bucket, clean_without_schema, duration_bucket, sensitive_kind


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("ann@example.org", "email"),
        ("10.0.0.1", "ip address"),
        ("fe80::1ff:fe23:4567:890a", "ip address"),
        ("2001:db8::8a2e:370:7334", "ip address"),
        ("https://user:hunter2@example.org/x", "url with credentials"),
        ("/home/ann/project", "file path"),
        ("~/.ssh/id_rsa", "file path"),
        ("C:\\Users\\ann", "file path"),
        ("ghp_abcdefghijklmnop1234", "token"),
        ("AKIAIOSFODNN7EXAMPLE", "token"),
        ("aB3dEfGhIjKlMnOpQrStUvWx", "token"),
        ("::1", "ip address"),
        ("00:1a:2b:3c:4d:5e", "mac address"),
        ("std::vector", None),
        ("build", None),
        ("remote add", None),
        ("1.2.3", None),
        ("github-actions", None),
        ("--fast", None),
        ("12:30:45", None),
    ],
)
def test_safety_net(text: str, kind: str | None) -> None:
    assert sensitive_kind(text) == kind


def test_integer_buckets() -> None:
    edges = (1, 10, 100)
    assert [bucket(v, edges) for v in (0, 1, 9, 10, 99, 100, 5000)] == [
        "<1",
        "1-9",
        "1-9",
        "10-99",
        "10-99",
        "100+",
        "100+",
    ]
    assert bucket(1, (1, 2, 5)) == "1"


def test_duration_buckets() -> None:
    assert [duration_bucket(s) for s in (0.2, 3, 30, 300, 3000, 30000)] == [
        "<1s",
        "1-10s",
        "10-60s",
        "1-10m",
        "10-60m",
        ">1h",
    ]


def test_declared_values_are_still_checked_by_the_safety_net() -> None:
    schema = footfall.Schema({"start": {"plugin": footfall.Identifier(), "where": footfall.Enum("/home/x", "ok")}})
    assert schema.clean("start", {"plugin": "cache", "where": "/home/x"}) == {"plugin": "cache"}
    assert schema.clean("start", {"plugin": "ann@example.org"}) == {}


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (footfall.Bool(), True, 1),
        (footfall.Version(), "2.3.0rc1", "2.3.0 (local build)"),
        (footfall.CommandPath(), "remote add", "remote add origin https://x"),
        (footfall.Enum("a", "b"), "a", "c"),
        (footfall.Integer((1, 10)), 5, "5"),
    ],
)
def test_types(kind: footfall.PropType, good: object, bad: object) -> None:
    assert kind.clean(good) is not None
    assert kind.clean(bad) is None


def test_option_names_keep_names_never_values() -> None:
    assert footfall.OptionNames().clean(["--users", "50", "-v", "--host=x", "--users"]) == [
        "--users",
        "-v",
    ]


def test_without_a_schema_the_command_event_is_still_typed() -> None:
    assert clean_without_schema("command", {"command": "build", "argv": "x", "options": ["--a"]}) == {
        "command": "build",
        "options": ["--a"],
    }
