"""Health and smoke checks of a model server over HTTP, with requests.

Two flavours share one client: Ollama's own API (``/``, ``/api/version``, ``/api/tags``,
``/api/generate``) and the OpenAI-compatible API that both llama.cpp's llama-server and Ollama
serve (``/health`` for llama-server, ``/v1/models``, ``/v1/completions``). Every failure names
the endpoint and, where there is one, the model. No pyinfra here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import requests


class HealthError(RuntimeError):
    pass


@dataclass
class Report:
    base_url: str
    flavour: str
    version: str = ""
    models: list[str] = field(default_factory=list)
    samples: dict[str, str] = field(default_factory=dict)  # model -> generated text

    def lines(self) -> list[str]:
        out = [
            f"{self.base_url} ({self.flavour}{', ' + self.version if self.version else ''}): "
            f"healthy, {len(self.models)} model(s) listed"
        ]
        out += [f"  {m}: {t.strip()[:60]!r}" for m, t in self.samples.items()]
        return out


def _same_model(wanted: str, listed: str) -> bool:
    """'smollm2' matches 'smollm2:latest'; paths match by file name."""

    def norm(name: str) -> str:
        name = name.rsplit("/", 1)[-1]
        return name if ":" in name or name.endswith(".gguf") else name + ":latest"

    return norm(wanted) == norm(listed)


class Client:
    def __init__(
        self, base_url: str, timeout: float = 120, session: requests.Session | None = None
    ):
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.http = session or requests.Session()

    def _call(self, method: str, path: str, model: str | None = None, **kw) -> requests.Response:
        url = self.base + path
        who = f" (model {model})" if model else ""
        try:
            r = self.http.request(method, url, timeout=kw.pop("timeout", self.timeout), **kw)
        except requests.RequestException as e:
            raise HealthError(f"{method} {url}{who}: {e.__class__.__name__}: {e}") from None
        if r.status_code != 200:
            raise HealthError(f"{method} {url}{who}: HTTP {r.status_code}: {r.text[:200]}")
        return r

    def _json(self, method: str, path: str, model: str | None = None, **kw) -> dict:
        r = self._call(method, path, model, **kw)
        try:
            return r.json()
        except ValueError:
            raise HealthError(f"{method} {self.base + path}: not JSON: {r.text[:200]}") from None

    def wait_ready(self, deadline_s: float, path: str = "/health") -> None:
        """Poll until the server answers 200 (llama-server says 503 while loading)."""
        end = time.monotonic() + deadline_s
        last = ""
        while time.monotonic() < end:
            try:
                r = self.http.get(self.base + path, timeout=5)
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}: {r.text[:100]}"
            except requests.RequestException as e:
                last = f"{e.__class__.__name__}"
            time.sleep(1)
        raise HealthError(f"GET {self.base + path}: not ready after {deadline_s:.0f}s ({last})")

    # -- the OpenAI-compatible API (llama-server, and Ollama's /v1) --------------------------
    def openai_models(self) -> list[str]:
        data = self._json("GET", "/v1/models").get("data", [])
        names = []
        for m in data:
            names.append(m.get("id", ""))
            names += m.get("aliases") or []
        return list(dict.fromkeys(n for n in names if n))  # an alias may repeat the id

    def openai_complete(self, model: str, prompt: str, max_tokens: int = 16) -> str:
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
        data = self._json("POST", "/v1/completions", model, json=body)
        try:
            text = data["choices"][0]["text"]
        except (KeyError, IndexError, TypeError):
            raise HealthError(
                f"POST {self.base}/v1/completions (model {model}): "
                f"no choices[0].text in {str(data)[:200]}"
            ) from None
        if not text.strip():
            raise HealthError(f"POST {self.base}/v1/completions (model {model}): empty text")
        return text

    # -- Ollama's own API ---------------------------------------------------------------
    def ollama_version(self) -> str:
        r = self._call("GET", "/")
        if "Ollama is running" not in r.text:
            raise HealthError(
                f"GET {self.base}/: expected 'Ollama is running', got {r.text[:100]!r}"
            )
        return self._json("GET", "/api/version").get("version", "")

    def ollama_models(self) -> list[str]:
        return [
            m.get("name") or m.get("model", "")
            for m in self._json("GET", "/api/tags").get("models", [])
        ]

    def ollama_generate(self, model: str, prompt: str, max_tokens: int = 16) -> str:
        """A completion of the prompt as given (`raw`: from Ollama v0.30 a prompt without it is
        made a chat message and rendered with the GGUF's chat template, which a chat model may
        answer with blank lines first)."""
        body = {
            "model": model,
            "prompt": prompt,
            "raw": True,
            "stream": False,
            "options": {"num_predict": max_tokens, "temperature": 0},
        }
        text = self._json("POST", "/api/generate", model, json=body).get("response", "")
        if not text.strip():
            raise HealthError(f"POST {self.base}/api/generate (model {model}): empty response")
        return text


# The smoke generation: a completion prompt that base and chat models alike continue with a word
# at once (SmolLM2-135M: " Paris."; after "Say hello." it emits two newlines first, which the
# check would call empty), and two tokens: the first comes from evaluating the prompt, the second
# from one real decode step. Enough to prove the model loads and generates; more only costs time
# (~10 s a token for SmolLM2 on the lab VM's emulated CPU, where 16 tokens took 160 s).
SMOKE_PROMPT = "The capital of France is"
SMOKE_TOKENS = 2


def check(
    base_url: str,
    models: list[str],
    flavour: str,
    prompt: str = SMOKE_PROMPT,
    ready_timeout: float = 120,
    timeout: float = 120,
) -> Report:
    """Health (the API answers), listing (every model is there), smoke (one short generation
    per model returns text). Raises HealthError naming the endpoint and model."""
    if flavour not in ("ollama", "openai"):
        raise ValueError(f"flavour {flavour!r}: one of ollama, openai")
    c = Client(base_url, timeout=timeout)
    report = Report(base_url, flavour)
    if flavour == "ollama":
        c.wait_ready(ready_timeout, "/")
        report.version = c.ollama_version()
        listed = c.ollama_models()
    else:
        c.wait_ready(ready_timeout, "/health")
        listed = c.openai_models()
    report.models = listed
    for m in models:
        if not any(_same_model(m, name) for name in listed):
            where = "/api/tags" if flavour == "ollama" else "/v1/models"
            raise HealthError(
                f"GET {c.base}{where}: model {m} is not listed "
                f"(listed: {', '.join(listed) or 'none'})"
            )
        report.samples[m] = (
            c.ollama_generate(m, prompt, SMOKE_TOKENS)
            if flavour == "ollama"
            else c.openai_complete(m, prompt, SMOKE_TOKENS)
        )
    return report
