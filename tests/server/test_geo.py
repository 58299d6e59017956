from __future__ import annotations

from pathlib import Path

import pytest

from footfall.server.errors import UsageError
from footfall.server.ingest.geo import CountryResolver, client_ip, parse_networks, truncate


def test_built_in_table() -> None:
    resolver = CountryResolver()
    assert resolver.country("8.8.8.8") == "US"
    assert resolver.country("81.2.69.160") == "GB"
    for private in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "::1", "not an ip", "", None, "1.2.3.x"):
        assert resolver.country(private) == ""


def test_an_operators_maxmind_database(tmp_path: Path) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-Country", ipv4_compatible=True)
    writer.insert_network(IPSet(["81.2.69.0/24"]), {"country": {"iso_code": "NL"}})
    writer.insert_network(IPSet(["2a02:db8::/32"]), {"country": {"iso_code": "FR"}})
    path = tmp_path / "countries.mmdb"
    writer.to_db_file(str(path))
    resolver = CountryResolver(str(path))
    assert resolver.country("81.2.69.160") == "NL", "the operator's file wins over the built-in table"
    assert resolver.country("2a02:db8::1") == "FR", "IPv6 works with a MaxMind file"
    assert resolver.country("8.8.8.8") == ""


def test_a_bad_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "junk.mmdb").write_bytes(b"not a database")
    with pytest.raises(UsageError, match="cannot read the GeoIP database"):
        CountryResolver(str(tmp_path / "junk.mmdb"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", "8.8.8.8", "203.0.113.9"),  # not a trusted proxy: the header is ignored
        ("10.0.0.2", "8.8.8.8", "8.8.8.8"),
        ("10.0.0.2", "1.1.1.1, 8.8.8.8, 10.0.0.3", "8.8.8.8"),  # the nearest untrusted hop
        ("10.0.0.2", "garbage, 8.8.8.8", "8.8.8.8"),
        ("10.0.0.2", "8.8.8.8, garbage", None),  # a broken hop we would have trusted past: no address
        ("10.0.0.2", None, "10.0.0.2"),
    ],
)
def test_x_forwarded_for(peer: str, forwarded: str | None, expected: str | None) -> None:
    assert client_ip(peer, forwarded, parse_networks("10.0.0.0/8")) == expected


def test_truncate_and_bad_networks() -> None:
    assert truncate("81.2.69.160") == "81.2.69.0"
    assert truncate("2a02:db8:1:2:3:4:5:6") == "2a02:db8:1::"
    with pytest.raises(UsageError, match="is not an address or network"):
        parse_networks("10.0.0.0/8, nonsense")
