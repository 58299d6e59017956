"""A User-Agent string reduced to the platform fields Footfall keeps: OS, version, arch."""

from __future__ import annotations

import re

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("windows", re.compile(r"Windows NT (\d+\.\d+)")),
    ("android", re.compile(r"Android (\d+(?:\.\d+)?)")),
    ("ios", re.compile(r"(?:iPhone|CPU) OS (\d+)_(\d+)")),
    ("macos", re.compile(r"Mac OS X (\d+)[._](\d+)")),
    ("chromeos", re.compile(r"CrOS \S+ (\d+)\.(\d+)")),
    ("linux", re.compile(r"Linux")),
)
_ARCH = re.compile(r"\b(x86_64|amd64|aarch64|arm64|armv7l|i686|x64|Win64|WOW64)\b", re.IGNORECASE)
_PYTHON = re.compile(r"[Pp]ython(?:-urllib)?/(\d+\.\d+)")


def parse_user_agent(text: str) -> dict[str, str]:
    platform = {"os": "", "os_version": "", "arch": "", "runtime": "", "runtime_version": ""}
    for name, pattern in _RULES:
        match = pattern.search(text)
        if match:
            platform["os"] = name
            platform["os_version"] = ".".join(g for g in match.groups() if g)
            break
    arch = _ARCH.search(text)
    if arch:
        found = arch.group(1).lower()
        platform["arch"] = {
            "x64": "x86_64",
            "win64": "x86_64",
            "wow64": "x86_64",
            "amd64": "x86_64",
        }.get(found, found)
    python = _PYTHON.search(text)
    if python or "python-requests" in text:
        platform["runtime"] = "cpython"
        platform["runtime_version"] = python.group(1) if python else ""
    return platform
