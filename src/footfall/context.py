"""Detect the context sent with every batch: platform and environment, never identity.

Only coarse values leave the machine: the OS name with major.minor version, the CPU
architecture, the Python implementation with major.minor version, the CI provider and
the container kind. No host name, user name, path, kernel build string or address.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# Environment variables that identify a CI provider, checked in order. The generic
# `CI` variable comes last so that a specific provider wins.
# The union of the lists .NET and Flutter use, and a few more.
CI_PROVIDERS: tuple[tuple[str, str], ...] = (
    ("GITHUB_ACTIONS", "github-actions"),
    ("GITLAB_CI", "gitlab"),
    ("JENKINS_URL", "jenkins"),
    ("CIRCLECI", "circleci"),
    ("TRAVIS", "travis"),
    ("TF_BUILD", "azure-pipelines"),
    ("BUILDKITE", "buildkite"),
    ("TEAMCITY_VERSION", "teamcity"),
    ("CODEBUILD_BUILD_ID", "aws-codebuild"),
    ("BITBUCKET_BUILD_NUMBER", "bitbucket"),
    ("APPVEYOR", "appveyor"),
    ("CIRRUS_CI", "cirrus"),
    ("DRONE", "drone"),
    ("SEMAPHORE", "semaphore"),
    ("BITRISE_IO", "bitrise"),
    ("BUDDY", "buddy"),
    ("JB_SPACE_API_URL", "jetbrains-space"),
    ("NETLIFY", "netlify"),
    ("VERCEL", "vercel"),
    ("HEROKU_TEST_RUN_ID", "heroku"),
    ("SWARMING_BOT_ID", "luci"),
    ("CONTINUOUS_INTEGRATION", "generic"),
    ("BUILD_ID", "generic"),  # Jenkins without JENKINS_URL, Google Cloud Build
    ("BOT", "generic"),
    ("CI", "generic"),
)


def major_minor(version: str) -> str:
    """Keep only the leading `major.minor` digits of a version string."""
    parts: list[str] = []
    for piece in version.split(".")[:2]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(digits)
    return ".".join(parts)


def detect_platform() -> dict[str, str]:
    import platform  # a few milliseconds: paid in the worker thread, not at import

    system = platform.system().lower() or "unknown"
    if system == "darwin":
        system, version = "macos", platform.mac_ver()[0]
    elif system == "windows":
        version = platform.version()
    else:
        version = platform.release()
    return {
        "os": system,
        "os_version": major_minor(version),
        "arch": platform.machine().lower(),
        "runtime": sys.implementation.name,
        "runtime_version": f"{sys.version_info[0]}.{sys.version_info[1]}",
    }


def detect_ci(environ: Mapping[str, str]) -> str:
    for variable, provider in CI_PROVIDERS:
        value = environ.get(variable, "").strip().lower()
        if value and value not in ("0", "false", "no"):
            return provider
    return ""


def detect_container(environ: Mapping[str, str], root: str = "/") -> str:
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    if os.path.exists(os.path.join(root, "run/.containerenv")):
        return "podman"
    if os.path.exists(os.path.join(root, ".dockerenv")):
        return "docker"
    return ""


def detect_context(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    return {
        "platform": detect_platform(),
        "environment": {"ci": detect_ci(env), "container": detect_container(env)},
    }
