"""The model server answers: the API, every model of the bundle listed, each one generating."""

import json

import pytest


def test_the_api_answers(node_http):
    status, body = node_http("GET", "/")
    assert status == 200 and "Ollama is running" in body
    status, body = node_http("GET", "/api/version")
    assert status == 200 and json.loads(body)["version"]


def test_every_model_of_the_bundle_is_listed(node_http, models):
    status, body = node_http("GET", "/api/tags")
    assert status == 200, body
    listed = {m["name"] for m in json.loads(body)["models"]}
    normal = {n if ":" in n else n + ":latest" for n in models}
    assert normal <= listed, f"not listed: {sorted(normal - listed)}"


def test_every_model_answers_a_prompt(node_http, models):
    if not models:
        pytest.skip("the bundle holds no models")
    for model in models:
        status, body = node_http("POST", "/api/generate", {
            "model": model, "prompt": "Say hello.", "stream": False,
            "options": {"num_predict": 16, "temperature": 0}})
        assert status == 200, f"{model}: HTTP {status}: {body[:300]}"
        assert json.loads(body)["response"].strip(), f"{model}: empty answer"


def test_the_model_store_is_outside_k0s_and_owned_by_ollama(host):
    store = host.file("/var/lib/airnode/models")
    assert store.is_directory and store.user == "ollama"
    assert host.file("/var/lib/airnode/models/manifests").is_directory
