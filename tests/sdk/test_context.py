from __future__ import annotations

from pathlib import Path

import pytest

from footfall.context import detect_ci, detect_container, detect_context, major_minor


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("6.1.0-18-amd64", "6.1"),
        ("10.0.19045", "10.0"),
        ("14", "14"),
        ("", ""),
        ("abc", ""),
        ("5.15rc2", "5.15"),
    ],
)
def test_versions_keep_only_major_minor(version: str, expected: str) -> None:
    assert major_minor(version) == expected


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"GITHUB_ACTIONS": "true", "CI": "true"}, "github-actions"),
        ({"GITLAB_CI": "true"}, "gitlab"),
        ({"JENKINS_URL": "http://jenkins"}, "jenkins"),
        ({"TF_BUILD": "True"}, "azure-pipelines"),
        ({"CODEBUILD_BUILD_ID": "x"}, "aws-codebuild"),
        ({"CI": "1"}, "generic"),
        ({"CI": "false"}, ""),
        ({}, ""),
    ],
)
def test_ci_provider_detection(environ: dict[str, str], expected: str) -> None:
    assert detect_ci(environ) == expected


def test_container_detection(tmp_path: Path) -> None:
    assert detect_container({}, root=str(tmp_path)) == ""
    (tmp_path / ".dockerenv").touch()
    assert detect_container({}, root=str(tmp_path)) == "docker"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".containerenv").touch()
    assert detect_container({}, root=str(tmp_path)) == "podman"
    assert detect_container({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, root=str(tmp_path)) == "kubernetes"


def test_context_holds_nothing_that_identifies_the_machine() -> None:
    import getpass
    import socket

    text = repr(detect_context({}))
    assert socket.gethostname() not in text
    assert getpass.getuser() not in text
    assert str(Path.home()) not in text
