"""The main job as a new user runs it: `./dev lab` with no argument assembles the lab bundle,
boots the lab VM, deploys the whole node with default settings and ends with the model's answer
to a question — a real answer from the real SmolLM2-135M, run by the real llama.cpp code behind
the Ollama stand-in's API."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from airnode import lab
from airnode.paths import ROOT
from tests.conftest import TIMINGS
from tests.upstream import OLLAMA

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def dev_lab():
    inst = lab.instance()
    if inst.pid() is not None:
        pytest.fail(f"a lab VM is already running in {inst.dir}: `airnode lab stop` first")
    env = {k: v for k, v in os.environ.items() if k != "AIRNODE_LAB_DIR"}
    started = time.monotonic()
    p = subprocess.run(
        [str(ROOT / "dev"), "lab"], capture_output=True, text=True, env=env, cwd="/", timeout=2400
    )
    TIMINGS.append(
        ("./dev lab (bundle cached or built, VM boot, deploy, ask)", time.monotonic() - started)
    )
    try:
        yield p, inst
    finally:
        inst.stop()


def test_dev_lab_deploys_the_whole_node_and_ends_with_a_real_answer(dev_lab):
    p, _ = dev_lab
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    # the deploy's own health check, through its SSH tunnel
    assert f"(ollama, {OLLAMA[1:]}): healthy, 1 model(s) listed" in p.stderr
    out = p.stdout
    assert "smollm2:135m was asked: The capital of France is\n" in out
    answer = out.split("The capital of France is\n", 1)[1].split("\n\n", 1)[0]
    assert "Paris" in answer, out[-2000:]  # the real model knows; no canned text does
    assert "curl http://127.0.0.1:31434/api/tags" in out


def test_the_lab_node_is_what_the_deploy_says(dev_lab):
    _, inst = dev_lab
    out = inst.ssh("k0s kubectl get pods -A; ls /var/lib/airnode/models/blobs | wc -l").stdout
    assert "airnode model-server-0 1/1 Running" in out
    assert "monitoring prometheus-k8s-0 1/1 Running" in out and "Pending" not in out
