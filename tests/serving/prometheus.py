"""A real Prometheus for the tests: Debian's `prometheus` server and its `promtool` (package
`prometheus`, 2.42 on bookworm), started on a free 127.0.0.1 port with a throwaway config and
data directory. Nothing here imitates Prometheus: PromQL is parsed and evaluated by its code."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

# What Grafana substitutes in a query before it reaches Prometheus (a 1s scrape interval here:
# $__rate_interval is at least four of them). Any other $variable in a query fails the test.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "6h"}


def require() -> None:
    """Skip without Debian's prometheus package, except in CI (CI=true), where it must be."""
    missing = [p for p in (PROMETHEUS, PROMTOOL) if not os.access(p, os.X_OK)]
    if not missing:
        return
    why = f"{', '.join(missing)} missing: apt-get install prometheus (./dev setup installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"in CI the real Prometheus must be there: {why}")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Target:
    """One query of a Grafana dashboard, as Grafana sends it to Prometheus."""

    board: str
    panel: str
    ref: str
    expr: str

    def __str__(self) -> str:
        return f"{self.board} / {self.panel!r} / {self.ref}: {self.expr}"


def grafana_expr(expr: str) -> str:
    """The query with Grafana's built-in variables replaced, as Grafana would send it."""
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name]).replace(
            "${" + name[1:] + "}", GRAFANA_VARIABLES[name]
        )
    left = re.findall(r"\$\{?\w+", expr)
    assert not left, f"{expr}: Grafana variables this test does not know: {left}"
    return expr


def targets(board_json: str) -> list[Target]:
    """Every panel query of a rendered Grafana dashboard (JSON text)."""
    board = json.loads(board_json)
    out = []
    for panel in board.get("panels", []):
        for t in panel.get("targets", []):
            assert t.get("expr", "").strip(), f"{board['uid']} / {panel.get('title')}: no expr"
            out.append(
                Target(
                    board["uid"],
                    panel.get("title", ""),
                    t.get("refId", ""),
                    grafana_expr(t["expr"]),
                )
            )
    return out


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def wait_answering(proc: subprocess.Popen, url: str, what: str, timeout: float, logs) -> None:
    """Until ``url`` answers 200; AssertionError with ``logs()`` if ``proc`` exits first or
    ``timeout`` passes."""
    end = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited ({proc.returncode}): {logs()}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > end:
            raise AssertionError(f"{what} not ready after {timeout}s: {logs()}")
        time.sleep(0.2)


class Prometheus:
    """The real Prometheus server on 127.0.0.1:<free port>, scraping what `scrape_configs`
    says, its TSDB in `workdir`. Stopped by stop() (or leaving the with-block)."""

    def __init__(self, workdir: Path, scrape_configs: list[dict], interval: str = "1s"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": interval,
                        "scrape_timeout": interval,
                        "evaluation_interval": interval,
                    },
                    "scrape_configs": scrape_configs,
                },
                sort_keys=False,
            )
        )
        checked = promtool("check", "config", str(config))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        self.log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.workdir = workdir
        try:
            self.wait_ready(30)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float) -> None:
        wait_answering(self.proc, f"{self.url}/-/ready", "prometheus", timeout, self.logs)

    def logs(self) -> str:
        self.log.flush()
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-3000:]

    def query(self, expr: str) -> dict:
        """/api/v1/query at now: Prometheus's answer (status, data or errorType/error)."""
        r = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        return r.json()

    def series(self, expr: str) -> list[dict]:
        """The instant vector `expr` evaluates to; AssertionError if Prometheus refuses it."""
        answer = self.query(expr)
        assert answer["status"] == "success", (
            f"{expr}: {answer.get('errorType')}: {answer.get('error')}"
        )
        assert answer["data"]["resultType"] == "vector", f"{expr}: {answer['data']}"
        return answer["data"]["result"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def record_name(t: Target, index: int) -> str:
    """A recording-rule name for a dashboard query (a valid metric name)."""
    return f"airnode_dashboard:{re.sub(r'[^A-Za-z0-9_]', '_', t.board)}:q{index}_{t.ref}"


def expressions_test(
    workdir: Path, queries: list[Target], input_series: list[dict], eval_time: str
) -> tuple[subprocess.CompletedProcess, dict[str, Target]]:
    """`promtool test rules` over `input_series` ({series, values} as promtool reads them):
    each query, verbatim, is a recording rule (so promtool parses it as it stands) and each
    recorded result must hold at least one series at `eval_time`. Returns promtool's result
    and {record name: query}."""
    names = {record_name(t, i): t for i, t in enumerate(queries)}
    rules = workdir / "dashboard-queries.rules.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "airnode-dashboard-queries",
                        "rules": [{"record": n, "expr": t.expr} for n, t in names.items()],
                    }
                ]
            },
            sort_keys=False,
        )
    )
    tests = workdir / "dashboard-queries.test.yaml"
    tests.write_text(
        yaml.safe_dump(
            {
                "rule_files": [rules.name],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": input_series,
                        # count() of nothing is nothing: an empty result fails as "got: []"
                        "promql_expr_test": [
                            {
                                "expr": f"count({n}) >= bool 1",
                                "eval_time": eval_time,
                                "exp_samples": [{"labels": "{}", "value": 1}],
                            }
                            for n in names
                        ],
                    }
                ],
            },
            sort_keys=False,
        )
    )
    return promtool("test", "rules", tests.name, cwd=workdir), names


BLACKBOX = shutil.which("prometheus-blackbox-exporter") or "/usr/bin/prometheus-blackbox-exporter"


def require_blackbox() -> None:
    """Skip without Debian's prometheus-blackbox-exporter, except in CI (CI=true)."""
    if os.access(BLACKBOX, os.X_OK):
        return
    why = f"{BLACKBOX} missing: apt-get install prometheus-blackbox-exporter (./dev setup does)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"in CI the real blackbox exporter must be there: {why}")
    pytest.skip(why)


class BlackboxExporter:
    """The real blackbox exporter (Debian's prometheus-blackbox-exporter) on
    127.0.0.1:<free port>, with the modules of ``config_text`` (blackbox.yml)."""

    def __init__(self, workdir: Path, config_text: str):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config = workdir / "blackbox.yml"
        config.write_text(config_text)
        self.log = open(workdir / "blackbox.log", "wb")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [BLACKBOX, f"--config.file={config}", f"--web.listen-address={self.address}"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.workdir = workdir
        try:
            healthy = f"http://{self.address}/-/healthy"
            wait_answering(self.proc, healthy, "the blackbox exporter", 30, self.logs)
        except BaseException:
            self.stop()
            raise

    def logs(self) -> str:
        self.log.flush()
        return (self.workdir / "blackbox.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
        self.log.close()

    def __enter__(self) -> BlackboxExporter:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
