"""Shared test plumbing: timings worth reading in the CI log.

./dev test runs the test files on two workers (pytest-xdist): each worker appends its timings to
one file the controller names, and the controller prints them all at the end."""

import json
import os
import tempfile


class _Timings(list):
    def append(self, item: tuple[str, float]) -> None:
        super().append(item)
        path = os.environ.get("AIRNODE_TIMINGS_FILE")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps(list(item)) + "\n")


TIMINGS: list[tuple[str, float]] = _Timings()


# Minutes each lab module took here, run alone (docs/testing.md, "Tests"): the longest start
# first, so that two workers finish close together; the fast tests fill in at the end. A new
# lab module not listed starts first of all.
LAB_MINUTES = {
    "test_cluster.py": 21,  # 19:48 alone in session 11, without its removal test (2-3 VMs)
    "test_serving.py": 20,  # 20:01 alone in session 10, with the GPU node
    "test_llama_server.py": 18,
    "test_lifecycle.py": 13,
    "test_bundle_deploy.py": 15,
    "test_dev_lab.py": 7,
    "test_host_prep.py": 4.5,
}


# The lab cluster module boots two, then three VMs at once: beside the other lab modules on a
# two-core machine it slowed every module about twofold (the full suite went from 54 to about
# 90 minutes, past CI's limit). It runs on its own (`./dev test-cluster`) until the suite has
# room for it; AIRNODE_TEST_CLUSTER=1 includes it in any run.
CLUSTER_MODULE = "test_cluster.py"


def pytest_collection_modifyitems(config, items):
    import pytest

    if os.environ.get("AIRNODE_TEST_CLUSTER") != "1":
        skip = pytest.mark.skip(
            reason="the lab cluster (2-3 VMs) runs on its own: ./dev test-cluster "
            "(or AIRNODE_TEST_CLUSTER=1)"
        )
        for item in items:
            if item.path.name == CLUSTER_MODULE and item.path.parent.name == "lab":
                item.add_marker(skip)

    def weight(item) -> float:
        path = item.path
        if path.parent.name != "lab":
            return 0.0
        return LAB_MINUTES.get(path.name, 1000.0)

    # a stable sort: the order within a module is kept
    items.sort(key=lambda item: -weight(item))


def pytest_configure(config):
    # the controller (or a plain run) names the file; workers inherit it through the environment
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        fd, path = tempfile.mkstemp(prefix="airnode-timings-")
        os.close(fd)
        os.environ["AIRNODE_TIMINGS_FILE"] = path


def pytest_terminal_summary(terminalreporter):
    path = os.environ.get("AIRNODE_TIMINGS_FILE")
    if not path or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    try:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    finally:
        os.unlink(path)
    if rows:
        terminalreporter.section("airnode timings (seconds)")
        for what, seconds in rows:
            terminalreporter.write_line(f"{what:<60} {seconds:8.1f}")
