"""Preflight: read the host, check every setting, and refuse before any change."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import deploy

from airnode import cluster, config, gpu, nvidia, sizing, swap
from airnode import ollama as ollamalogic
from airnode.config import Setting, integer
from airnode.paths import CACHE, ROOT
from airnode.preflight import check_host
from airnode.serving import webui
from airnode.steps import (
    NODE,
    bundle,
    declared,
    k0s,
    model_server,
    module,
    monitoring,
    node_defaults,
    zram,
)
from airnode.steps._common import (
    PROC_SWAPS,
    UNAME_N,
    AirnodeError,
    declare,
    prefetch,
    profile,
    profile_read,
    remote,
    remote_on,
    service_read,
    service_state,
)
from airnode.steps.models import served_models

DEFAULTS = declare(
    "preflight",
    {
        "preflight_min_memory_mb": Setting(
            1024,
            integer(ge=256),
            "refuse hosts with less memory (MemTotal, MiB)",
        ),
        "preflight_reserved_mb": Setting(
            2048,
            integer(ge=0),
            "memory kept for k0s, containerd and monitoring when sizing models",
            was=("sizing_reserved_mb",),
        ),
    },
)
# Data keys that belong to pyinfra's connectors, not to airnode.
CONNECTOR_PREFIXES = (
    "ssh_",
    "winrm_",
    "docker_",
    "dockerssh_",
    "local_",
    "chroot_",
    "podman_",
    "terraform_",
    "vagrant_",
    "fake_",
)


def _prefetch(values: dict) -> None:
    """Every read the steps will make of the node, in one remote command (see _common)."""
    b = bundle.current("") if values["bundle_dir"] else None
    reads = [profile_read(), PROC_SWAPS, service_read(zram.UNIT)]
    for name in NODE:  # every step's reads, derived from the one list of steps
        step = module(name)
        if hasattr(step, "reads"):
            reads += step.reads(b)
    if b is not None:
        reads.append(sizing.disk_command(disk_paths(values)))
    prefetch(reads)


@deploy("Preflight", data_defaults=DEFAULTS)
def preflight():
    known = declared()  # the teardown's settings too: not typos
    values = {key: config.lookup(host.data.get, key, known[key]) for key in node_defaults()}
    problems = [str(e) for e in config.check_all(values, known)]
    if not problems and values["bundle_dir"]:
        # the bundle is checked here, before the node is even read: nothing from a bundle that
        # fails its checks (bundle.json's strict field rules included) reaches the node's shell
        try:
            bundle.current("")
        except AirnodeError as e:
            problems.append(str(e))
    # what the inventory and group data set, not the steps' data_defaults (pyinfra's Host
    # layers its data: override, host, groups, global, then the current deploy's defaults)
    given = {
        k
        for d in host.data.datas
        if d != host.get_deploy_data
        for k in (d() if callable(d) else d) or {}
    }
    former = [old for s in known.values() for old in s.was]
    for key in config.unknown_keys(given, [*known, *former], CONNECTOR_PREFIXES):
        logger.warning(f"{host.name}: unknown setting {key}: ignored")
    for warning in config.renamed(given, known):
        logger.warning(f"{host.name}: {warning}")
    if problems:
        raise AirnodeError(
            f"{host.name} cannot become an airnode node; nothing was changed:\n  - "
            + "\n  - ".join(problems)
        )

    _prefetch(values)
    facts = profile()
    problems += check_host(facts, values["preflight_min_memory_mb"], values["zram_swappiness"])
    problems += gpu_problems(values, facts.gpus)
    problems += cross_checks(values)
    problems += topology_problems(values)
    zram_swaps = [
        sw.name for sw in swap.parse_proc_swaps(remote(PROC_SWAPS).splitlines()) if sw.is_zram
    ]
    if zram_swaps and service_state(zram.UNIT)[0] != "active":
        problems.append(
            f"a zram swap not made by airnode is active ({', '.join(zram_swaps)}: "
            "zram-tools or systemd-zram-generator?): disable it first, airnode "
            "sets up its own"
        )
    if not problems:
        problems += _sizing(values, facts.memory_mb, facts.tools, facts.gpus)
    if not problems:
        problems += _scheduling(values, facts.cpus, facts.memory_kb * 1024)
    if problems:
        raise AirnodeError(
            f"{host.name} cannot become an airnode node; nothing was changed:\n  - "
            + "\n  - ".join(problems)
        )
    gpus = gpu.describe(facts.gpus)
    host.noop(
        f"{facts.arch}, {facts.os_release.get('PRETTY_NAME', '?')}, "
        f"kernel {facts.kernel}, {facts.memory_mb} MiB{', ' + gpus if gpus else ''}: supported"
    )


def gpu_problems(values: dict, facts: gpu.GpuFacts) -> list[str]:
    """The host's GPUs against model_server_gpus (airnode/gpu.py), then what the bundle must
    hold to serve on them (airnode/nvidia.py)."""
    requested = values["model_server_gpus"]
    problems = gpu.problems(requested, facts)
    if requested and not problems and values["bundle_dir"]:
        b = bundle.current("")
        if b is not None:
            problems += nvidia.bundle_problems(
                requested,
                [a["name"] for a in b.artifacts("nvidia-deb")],
                b.data.get("images", {}),
                values["model_server"],
                (b.data.get("spec", {}).get("llama_server") or {}).get("image", ""),
            )
    return problems


def topology_problems(values: dict) -> list[str]:
    """The cluster the inventory describes (airnode/cluster.py): its shape, this node's role
    against what k0s was installed as here, the controller's address, a worker's way to it,
    and the model server's replicas against the nodes that can hold them."""
    members = {h.name: h.groups for h in host.inventory}
    shape, wrong = cluster.shape(members)
    role = cluster.role(host.groups)
    # the cluster's problems concern each of its members (a single node beside it: not this)
    problems = list(wrong) if role != cluster.SINGLE else []
    if values["bundle_dir"]:
        installed = cluster.installed_role(remote(k0s.UNIT_TEXT), remote(k0s.WORKER_UNIT_TEXT))
        switch = cluster.switch_problem(host.name, installed, role)
        if switch:
            problems.append(switch)
    if shape.controller and role != cluster.SINGLE:
        ctrl = host.inventory.get_host(shape.controller)
        address = k0s.controller_address()
        if address is None and shape.workers:
            problems.append(
                f"{ctrl.name}, the controller, has no address its workers can reach: its "
                f"inventory address {k0s.inventory_address(ctrl)!r} is not an IP other nodes "
                "reach, and k0s_node_address is empty: set k0s_node_address to the IP the "
                "workers reach it on"
            )
        if role == cluster.WORKER and address:
            lines = remote(k0s.reach_read(address)).splitlines()
            problems += cluster.reach_problems(host.name, ctrl.name, address, lines)
        if role == cluster.WORKER:
            stale = cluster.stale_join_problem(
                host.name,
                ctrl.name,
                remote(cluster.KUBELET_CA_READ).strip(),
                remote_on(ctrl, cluster.CLUSTER_CA_READ).strip(),
            )
            if stale:
                problems.append(stale)
        mine = k0s.node_address(role)
        if mine:
            given = mine == values["k0s_node_address"]
            problem = cluster.not_local_problem(host.name, mine, given, remote(k0s.ADDRESSES))
            if problem:
                problems.append(problem)
    replicas = values["model_server_replicas"]
    nodes = len(shape.nodes) if role != cluster.SINGLE else 1
    if role != cluster.WORKER and replicas > nodes and not (wrong and role != cluster.SINGLE):
        problems.append(
            f"model_server_replicas = {replicas}, but the cluster has {nodes} node(s) and "
            "holds at most one replica per node: add workers to the inventory (a "
            f"{cluster.WORKERS} group beside a {cluster.CONTROLLERS} group) or ask for fewer"
        )
    return problems


def open_webui_admin_problems(values: dict) -> list[str]:
    """Open WebUI's sign-up is closed: its admin comes from these two settings, checked here on
    the control machine (the password file is read, never shown)."""
    missing = [
        k for k in ("open_webui_admin_email", "open_webui_admin_password_file") if not values[k]
    ]
    if missing:
        return [
            f"open_webui = true needs {' and '.join(missing)}: Open WebUI's sign-up is "
            "closed and its admin is made at its first start from "
            "open_webui_admin_email and the first line of open_webui_admin_password_file "
            "(a file on this machine, e.g. made with `install -m 600 /dev/null FILE` and "
            "an editor)"
        ]
    try:
        webui.admin_password(str(ROOT / values["open_webui_admin_password_file"]))
    except webui.SecretFileError as e:
        return [str(e)]
    return []


def cross_checks(values: dict) -> list[str]:
    """Settings that are each allowed but not together."""
    problems = config.path_overlaps(values)
    if values["model_server_check_url"] and not values["k0s_node_ports_on_lan"]:
        problems.append(
            f"model_server_check_url = {values['model_server_check_url']!r} "
            "reaches the node over the network, but its NodePorts answer on "
            "127.0.0.1 only (k0s_node_ports_on_lan = false): leave it empty (the "
            "check goes through the SSH connection) or open the NodePorts"
        )
    if values["open_webui"]:
        if values["open_webui_node_port"] == values["model_server_node_port"]:
            problems.append(
                f"open_webui_node_port = {values['open_webui_node_port']} is "
                "model_server_node_port too: give Open WebUI another port"
            )
        problems += open_webui_admin_problems(values)
    if values["model_server"] == "llama-server":
        return problems
    if values["ollama_kv_cache_type"] != "f16" and values["ollama_flash_attention"] is False:
        problems.append(
            f"ollama_kv_cache_type = {values['ollama_kv_cache_type']!r} needs flash "
            "attention, but ollama_flash_attention = false: set it to auto or true, "
            "or use ollama_kv_cache_type = 'f16'"
        )
    return problems


# Where a run writes, for df: each step's disk_needs names one of these.
def disk_paths(values: dict) -> list[str]:
    return [
        values["bundle_remote_dir"],
        values["model_server_store_dir"],
        values["ollama_install_dir"],
        "/usr/local",
        "/var/lib/containerd",
    ]


def _disk(values: dict, b: bundle.Bundle) -> list[str]:
    """What every step will write (each says it: disk_needs), against the free space of the
    filesystems it goes to; needs on one filesystem add up."""
    problems, needs = [], []
    for name in NODE:
        step = module(name)
        if hasattr(step, "disk_needs"):
            try:
                needs += step.disk_needs(b)
            except AirnodeError as e:
                problems.append(str(e))
    paths = disk_paths(values)
    df = remote(sizing.disk_command(paths))
    return problems + sizing.disk_problems(df.splitlines(), paths, needs)


def _sizing(
    values: dict, memory_mb: int, tools: dict[str, str], gpus: gpu.GpuFacts | None = None
) -> list[str]:
    """Every model of the bundle must fit in memory, and the bundle on the node's disk; with
    GPUs, in their memory too (or llama-server, which is told to put every layer there, is
    refused; Ollama runs what does not fit on the CPU: a warning with the table)."""
    b = bundle.current("no models to size") if values["bundle_dir"] else None
    if b is None:
        return []
    problems = []
    try:
        served = served_models(values, b)
    except AirnodeError as e:
        return [str(e)]
    context, parallel, kv_type = model_server.sizing_settings(values)
    models = [sizing.model_info(b.root / a["file"], a["name"], a["sha256"], CACHE) for a in served]
    fits = sizing.plan(
        models, memory_mb, values["preflight_reserved_mb"], context, parallel, kv_type
    )
    if any(not f.ok for f in fits):
        keys = (
            "llama_server_context_length, llama_server_parallel"
            if values["model_server"] == "llama-server"
            else "ollama_context_length, ollama_num_parallel, ollama_kv_cache_type"
        )
        problems.append(
            f"model(s) do not fit in memory (MemTotal {memory_mb} MiB - preflight_reserved_mb "
            f"{values['preflight_reserved_mb']} MiB; zram swap is not counted; {keys}):\n"
            + sizing.table(fits)
        )
    vram_problems, warning = vram_check(values, models, gpus)
    problems += vram_problems
    if warning:
        logger.warning(f"{host.name}: {warning}")
    bad_names = []
    for m in b.artifacts("model"):
        try:
            ollamalogic.split_name(m["name"])
        except ValueError as e:
            bad_names.append(str(e))
    problems += bad_names
    if not bad_names:
        problems += _disk(values, b)
    zst = values["model_server"] == "ollama" and any(
        a["file"].endswith(".tar.zst") for a in b.artifacts("ollama")
    )
    if zst and not tools.get("zstd"):
        problems.append(
            "the bundle's Ollama tarball is .tar.zst and this host has no zstd "
            "(needed to unpack it): install Debian's zstd package first"
        )
    return problems


def vram_check(
    values: dict, models: list[sizing.ModelInfo], gpus: gpu.GpuFacts | None
) -> tuple[list[str], str]:
    """The models against the VRAM of the GPUs asked for: (problems, a warning or "")."""
    requested = values["model_server_gpus"]
    if not requested or gpus is None or not gpus.smi:
        return [], ""  # no request, or no memory to compare with (nvidia-smi absent)
    context, parallel, kv_type = model_server.sizing_settings(values)
    fits = sizing.gpu_plan(
        models, [g.memory_mib for g in gpus.smi], requested, context, parallel, kv_type
    )
    if all(f.ok for f in fits):
        return [], ""
    table = sizing.gpu_table(fits)
    own_layers = {"-ngl", "--gpu-layers", "--n-gpu-layers"} & {
        a.split("=", 1)[0] for a in values["llama_server_extra_args"]
    }
    if values["model_server"] == "llama-server" and not own_layers:
        return [
            f"model(s) do not fit in the VRAM of model_server_gpus = {requested} GPU(s), and "
            "llama-server is told to load every layer there (--n-gpu-layers all): ask for more "
            "GPUs, a smaller llama_server_context_length or quantization, or put some layers "
            "on the CPU yourself (llama_server_extra_args = ['--n-gpu-layers', 'N']):\n" + table
        ], ""
    return [], (
        f"model(s) do not fit in the VRAM of model_server_gpus = {requested} GPU(s): the "
        "layers that do not run on the CPU, slowly:\n" + table
    )


def _scheduling(values: dict, cpus: int, memory: int) -> list[str]:
    """Every pod the node will run must fit its allocatable, or the scheduler leaves the last
    ones (the model server) Pending: k0s's own pods, kube-prometheus's, the model server's and
    Open WebUI's requests, the model's memory need included (model_server_memory_request)."""
    b = bundle.current("") if values["bundle_dir"] else None
    if b is None or not cpus or not memory:
        return []
    from airnode import scheduling
    from airnode.serving.manifests import documents

    try:
        docs = monitoring.rendered(b).documents() + documents(
            model_server.render_text(
                values, b, remote(UNAME_N).strip().lower(), values["model_server_store_dir"]
            )
        )
    except AirnodeError:
        return []  # the step that renders it names the problem
    ns = values["model_server_namespace"]
    pods = scheduling.node_pods(
        docs,
        values["k0s_network_provider"],
        f"{ns}/model-server",
        worker=k0s.is_worker(),
        nodes=len(k0s.cluster_nodes()),
    )
    f = scheduling.fit(pods, cpus, memory)
    if f.ok:
        return []
    advice = {
        f"{ns}/model-server": "model_server_cpu_request, model_server_memory_request "
        "(auto: the model's need; a smaller model or context)",
        f"{ns}/open-webui": "open_webui = false",
    }
    if values["monitoring_high_availability"]:
        advice.update(
            {
                f"monitoring/{n}": "monitoring_high_availability = false"
                for n in ("main", "k8s", "prometheus-adapter")
            }
        )
    return [
        f"the pods this node would run ask for more {' and '.join(f.short)} than it has "
        f"({cpus} CPUs, MemTotal {memory // scheduling.MIB} MiB less the kubelet's 100 MiB "
        "eviction margin): the scheduler would leave the last ones - the model server - "
        "Pending:\n" + scheduling.table(f, advice)
    ]
