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
    "test_cluster.py": 21,  # 13:03 alone in session 14 (2-3 VMs)
    "test_serving.py": 20,  # 20:01 alone in session 10, with the GPU node
    "test_llama_server.py": 18,
    "test_lifecycle.py": 13,
    "test_bundle_deploy.py": 15,
    "test_dev_lab.py": 7,
    "test_host_prep.py": 4.5,
}


# Two tiers. `./dev test` (what CI runs) leaves out the lab scenarios marked `extended`; `./dev
# test-all` (AIRNODE_TEST_EXTENDED=1) runs them too. Why: the same suite ran about twice as long
# on one of this project's machines as on another (a whole-node deploy 473 s in the suite here,
# 236 s in session 10's), and CI's limit is 90 minutes on whichever it gets. The extended
# scenarios are re-deploys of paths the CI tier deploys already (docs/testing.md lists them).
# The lab cluster module (two, then three VMs) was in the second tier from session 11 to 15:
# beside it the tier took 80 minutes here in session 15, until every ssh to a lab VM shared
# one connection (airnode/lab.py) and the tier without it took 40 minutes.


def pytest_collection_modifyitems(config, items):
    import pytest

    extended = os.environ.get("AIRNODE_TEST_EXTENDED") == "1"
    skip_extended = pytest.mark.skip(reason="an extended lab scenario: ./dev test-all runs it")
    for item in items:
        if not extended and item.get_closest_marker("extended"):
            item.add_marker(skip_extended)

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
