"""The llama-server backend against real llama.cpp: the dashboard's metric names against what a
real server exports, and every flag airnode passes against llama.cpp's own argument table."""

from __future__ import annotations

import re

import requests

from airnode import llama_server, monitoring
from airnode.serving.health import check
from airnode.steps.model_server import DEFAULTS
from airnode.steps.monitoring import dashboards
from tests.upstream import llama_cpp_source


def exported_metrics(url: str) -> set[str]:
    text = requests.get(f"{url}/metrics", timeout=30).text
    return {
        line.split()[0].split("{")[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_every_llamacpp_metric_the_dashboard_queries_is_exported(llama_server):
    # one request first: a fresh server may export nothing before its first task
    check(llama_server, ["smollm2"], "openai", prompt="Hello")
    exported = exported_metrics(llama_server)
    assert exported, "the real server exported no metrics"
    used = monitoring.dashboard_metrics(
        dashboards("airnode", "llama-server")["airnode-llama-server"]
    )
    queried = {m for m in used if m.startswith("llamacpp:")}
    assert queried, "the dashboard queries no llamacpp:* metric"
    missing = sorted(queried - exported)
    assert not missing, f"the dashboard queries metrics the server does not export: {missing}"


def test_a_metric_the_server_does_not_export_would_be_caught(llama_server):
    """The check above can fail: a name llama.cpp dropped (kv_cache_usage_ratio) is not there."""
    assert "llamacpp:kv_cache_usage_ratio" not in exported_metrics(llama_server)


def flags_of(arg_cpp: str) -> set[str]:
    """Every flag in llama.cpp's argument table: common_arg({"-c", "--ctx-size"}, ...)."""
    flags = set()
    for group in re.findall(r"common_arg\(\s*\{([^}]*)\}", arg_cpp):
        flags |= set(re.findall(r'"(-[^"]+)"', group))
    for group in re.findall(r"common_arg\(\s*\{[^}]*\},\s*\{([^}]*)\}", arg_cpp):
        flags |= set(re.findall(r'"(-[^"]+)"', group))  # the negated forms (--no-...)
    return flags


def arg_cpp_option(arg_cpp: str, flag: str) -> str:
    """The text of one option's add_opt(common_arg({... flag ...}, ...)) in arg.cpp."""
    start = arg_cpp.index(f'"{flag}"')
    return arg_cpp[start : arg_cpp.index("add_opt(", start)]


def test_every_flag_airnode_passes_is_one_llama_server_knows():
    known = flags_of(llama_cpp_source("common/arg.cpp"))
    assert {"--ctx-size", "--parallel", "--metrics", "--alias"} <= known, len(known)
    args = llama_server.server_args(
        model_file="blobs/sha256-x",
        alias="a",
        context_length=DEFAULTS["llama_server_context_length"],
        parallel=2,
        threads=4,
        gpus=1,
    )
    used = {a for a in args if a.startswith("-")}
    assert "--n-gpu-layers" in used
    assert used - known == set()
    # `all` is one of the values -ngl takes at this build (its handler's "all" branch)
    ngl = arg_cpp_option(llama_cpp_source("common/arg.cpp"), "--n-gpu-layers")
    assert args[args.index("--n-gpu-layers") + 1] == "all" and 'value == "all"' in ngl
    assert set(llama_server.OWN_FLAGS) - known == set()
    assert "--not-a-flag" not in known  # the check can fail
