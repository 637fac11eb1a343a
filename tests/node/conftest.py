"""The acceptance suite for a provisioned node: pytest tests/node --hosts=ssh://root@NODE

It reads what the node should run from the node itself (the bundle manifest the deploy left in
/var/lib/airnode/bundle), so it needs no inventory. Options:
    --model-port       the model server's NodePort (default 31434)
    --model-namespace  its namespace (default airnode)
Tests marked `cluster` need a real Kubernetes API (the lab VM runs a k0s double: it selects
-m "not cluster").
"""

from __future__ import annotations

import json
import shlex

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--model-port", type=int, default=31434, help="the model server's NodePort (default 31434)"
    )
    parser.addoption(
        "--model-namespace",
        default="airnode",
        help="the model server's namespace (default airnode)",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: needs a real Kubernetes API (not the lab VM)")


@pytest.fixture(scope="session")
def port(request) -> int:
    return request.config.getoption("--model-port")


@pytest.fixture(scope="session")
def namespace(request) -> str:
    return request.config.getoption("--model-namespace")


@pytest.fixture(scope="module")
def bundle(host) -> dict:
    """The manifest of the bundle the node was deployed from."""
    out = host.run("cat /var/lib/airnode/bundle/bundle.json")
    if out.rc != 0:
        pytest.fail(
            "no /var/lib/airnode/bundle/bundle.json on the node: was it deployed with "
            "a bundle (bundle_dir)?"
        )
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def models(bundle) -> list[str]:
    return sorted(a["name"] for a in bundle["artifacts"] if a["kind"] == "model")


def http(
    host, method: str, port: int, path: str, body: dict | None = None, timeout: int = 300
) -> tuple[int, str]:
    """One HTTP/1.0 request from the node to itself with bash's /dev/tcp: no curl, no Python
    needed on the node, no port to open towards the test machine."""
    data = json.dumps(body) if body is not None else ""
    request = (
        f"{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
        + (
            f"Content-Type: application/json\r\nContent-Length: {len(data.encode())}\r\n"
            if body is not None
            else ""
        )
        + "\r\n"
        + data
    )
    script = (
        f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf '%s' {shlex.quote(request)} >&3 && cat <&3"
    )
    out = host.run(f"timeout {timeout} bash -c {shlex.quote(script)}")
    if out.rc != 0:
        return 0, out.stderr
    head, _, payload = out.stdout.partition("\r\n\r\n")
    status = head.split(" ", 2)
    return (int(status[1]) if len(status) > 1 and status[1].isdigit() else 0), payload


@pytest.fixture(scope="module")
def node_http(host, port):
    def call(method, path, body=None, timeout=300):
        return http(host, method, port, path, body, timeout)

    return call
