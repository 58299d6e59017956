"""Footfall SDK: anonymous, aggregate usage analytics for open-source tools.

    import footfall
    analytics = footfall.init(app="mytool", endpoint="https://footfall.example.org",
                              app_version="1.2.3")
    analytics.track("command", command="build")

This package uses the Python standard library only and never raises into the host.
"""

from __future__ import annotations

from footfall.client import Client, NullClient, init
from footfall.transport import DebugTransport, HttpTransport, MemoryTransport, Transport

__version__ = "0.1.0"

__all__ = [
    "Client",
    "DebugTransport",
    "HttpTransport",
    "MemoryTransport",
    "NullClient",
    "Transport",
    "__version__",
    "init",
]
