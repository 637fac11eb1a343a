"""The model server answers: the API, the models of the bundle listed, each one generating.
Either backend: Ollama (every model of the bundle) or llama-server (the one it serves, which
must be a model of the bundle), told apart by llama-server's /health."""

import json

import pytest

# a prompt any model continues with a word at once, and a few tokens: enough to see it generate
PROMPT = "The capital of France is"
TOKENS = 4


@pytest.fixture(scope="module")
def backend(node_http) -> str:
    status, body = node_http("GET", "/health")
    return "llama-server" if status == 200 and '"status"' in body else "ollama"


def test_the_api_answers(node_http, backend):
    if backend == "llama-server":
        status, body = node_http("GET", "/health")
        assert status == 200 and json.loads(body)["status"] == "ok"
        return
    status, body = node_http("GET", "/")
    assert status == 200 and "Ollama is running" in body
    status, body = node_http("GET", "/api/version")
    assert status == 200 and json.loads(body)["version"]


def listed(node_http, backend) -> set[str]:
    status, body = node_http("GET", "/v1/models" if backend == "llama-server" else "/api/tags")
    assert status == 200, body
    if backend == "llama-server":
        return {m["id"] for m in json.loads(body)["data"]}
    return {m["name"] for m in json.loads(body)["models"]}


def test_the_models_of_the_bundle_are_listed(node_http, backend, models):
    names = listed(node_http, backend)
    if backend == "llama-server":
        assert len(names) == 1 and names <= set(models), (
            f"llama-server lists {sorted(names)}, not one model of the bundle {models}"
        )
        return
    normal = {n if ":" in n else n + ":latest" for n in models}
    assert normal <= names, f"not listed: {sorted(normal - names)}"


def test_every_served_model_answers_a_prompt(node_http, backend, models):
    if not models:
        pytest.skip("the bundle holds no models")
    if backend == "llama-server":
        for model in listed(node_http, backend):
            status, body = node_http(
                "POST",
                "/v1/completions",
                {"model": model, "prompt": PROMPT, "max_tokens": TOKENS, "temperature": 0},
            )
            assert status == 200, f"{model}: HTTP {status}: {body[:300]}"
            assert json.loads(body)["choices"][0]["text"].strip(), f"{model}: empty answer"
        return
    for model in models:
        status, body = node_http(
            "POST",
            "/api/generate",
            {
                "model": model,
                "prompt": PROMPT,
                "stream": False,
                "options": {"num_predict": TOKENS, "temperature": 0},
            },
        )
        assert status == 200, f"{model}: HTTP {status}: {body[:300]}"
        assert json.loads(body)["response"].strip(), f"{model}: empty answer"


def test_llama_server_exports_its_metrics(node_http, backend):
    if backend != "llama-server":
        pytest.skip("Ollama has no /metrics (a blackbox probe watches it)")
    status, body = node_http("GET", "/metrics")
    assert status == 200 and "llamacpp:tokens_predicted_total" in body


def test_the_model_store_is_outside_k0s_and_owned_by_ollama(host):
    store = host.file("/var/lib/airnode/models")
    assert store.is_directory and store.user == "ollama"
    assert host.file("/var/lib/airnode/models/blobs").is_directory
