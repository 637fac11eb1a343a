"""The health/smoke client against a real llama.cpp server with a real tiny model."""

from __future__ import annotations

import pytest
import requests

from airnode.serving.health import HealthError, check


def test_healthy_server_lists_the_model_and_generates_text(llama_server):
    report = check(llama_server, ["smollm2"], "openai", prompt="The capital of France is")
    assert report.models and "smollm2" in report.models
    text = report.samples["smollm2"]
    assert isinstance(text, str) and len(text.strip()) > 0
    assert report.lines()[0].startswith(f"{llama_server} (openai): healthy")


def test_a_model_that_is_not_served_is_named_with_the_endpoint(llama_server):
    with pytest.raises(HealthError) as e:
        check(llama_server, ["smollm2", "llama3:8b"], "openai")
    assert f"GET {llama_server}/v1/models: model llama3:8b is not listed" in str(e.value)
    assert "smollm2" in str(e.value)  # what is listed instead


def test_a_server_that_is_not_there_is_named():
    with pytest.raises(HealthError, match=r"GET http://127.0.0.1:9/health: not ready after 2s"):
        check("http://127.0.0.1:9", ["m"], "openai", ready_timeout=2)


def test_the_ollama_flavour_refuses_a_server_that_is_not_ollama(llama_server):
    with pytest.raises(HealthError, match=rf"GET {llama_server}/"):
        check(llama_server, ["smollm2"], "ollama", ready_timeout=5)


def test_the_server_exports_llamacpp_metrics(llama_server):
    text = requests.get(f"{llama_server}/metrics", timeout=30).text
    assert "llamacpp:prompt_tokens_total" in text
    assert "llamacpp:tokens_predicted_total" in text


def test_check_cli(llama_server):
    import subprocess
    import sys

    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "airnode.cli",
            "check",
            llama_server,
            "--api",
            "openai",
            "--model",
            "smollm2",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "healthy, " in ok.stdout and "smollm2:" in ok.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "airnode.cli",
            "check",
            llama_server,
            "--api",
            "openai",
            "--model",
            "nope",
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "UNHEALTHY" in bad.stderr and "model nope" in bad.stderr


def test_a_model_listed_under_its_id_and_as_its_alias_counts_once(llama_server):
    report = check(llama_server, ["smollm2"], "openai", prompt="Hi")
    assert report.models == ["smollm2"]
    assert "healthy, 1 model(s) listed" in report.lines()[0]


def _predicted(base: str) -> float:
    for line in requests.get(f"{base}/metrics", timeout=30).text.splitlines():
        if line.startswith("llamacpp:tokens_predicted_total"):
            return float(line.split()[-1])
    raise AssertionError("no llamacpp:tokens_predicted_total")


def test_the_smoke_generation_is_two_tokens_of_a_prompt_models_continue_with_a_word(llama_server):
    # every token costs ~10 s on the lab VM's emulated CPU: the deploy's check asks for two
    from airnode.serving.health import SMOKE_TOKENS

    before = _predicted(llama_server)
    report = check(llama_server, ["smollm2"], "openai")
    assert _predicted(llama_server) - before == SMOKE_TOKENS == 2
    assert report.samples["smollm2"].strip().startswith("Paris")  # a word, not blank lines
