"""The `airnode` command: what is not a deploy (the lab VM; later the offline bundle)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from airnode import lab
from airnode.paths import ROOT


def _lab(args: argparse.Namespace) -> int:
    if args.action == "build":
        print(lab.ensure_image())
    elif args.action == "start":
        net = lab.ClusterNet(args.cluster, args.index) if args.cluster else None
        inst = lab.start(args.name, memory=args.memory, cpus=args.cpus, accel=args.accel, net=net)
        env = "" if args.name == "default" else f"AIRNODE_LAB_DIR={inst.dir} "
        opt = "" if args.name == "default" else f" --name {args.name}"
        deploy = (
            f"AIRNODE_LAB_CLUSTER={args.cluster} pyinfra inventories/lab_cluster.py "
            "deploys/node.py   (once every VM of the cluster is up)"
            if net
            else f"{env}pyinfra inventories/lab.py deploys/node.py"
        )
        where = f", {net.hostname} at {net.address} on cluster {net.name}" if net else ""
        print(
            f"lab VM {args.name} is up on 127.0.0.1:{inst.port} "
            f"({inst.info['accel']}, no egress{where}).\n"
            f"  deploy:  {deploy}\n"
            f"  shell:   airnode lab shell{opt}\n"
            f"  stop:    airnode lab stop{opt}"
        )
    elif args.action == "stop":
        inst = lab.instance(args.name)
        if inst.pid() is None and not inst.dir.exists():
            print(f"lab VM {args.name} is not running")
        inst.stop()
    elif args.action == "status":
        inst = lab.instance(args.name)
        if inst.pid():
            info = inst.info
            print(
                f"{args.name}: running (pid {inst.pid()}, {info['accel']}, "
                f"ssh 127.0.0.1:{info['port']}, image {info['image']})"
            )
        else:
            print(f"{args.name}: not running")
            return 1
    elif args.action == "shell":
        inst = lab.instance(args.name)
        if inst.pid() is None:
            raise lab.LabError(f"lab VM {args.name} is not running: `airnode lab start`")
        argv = inst.ssh_argv(*args.command)
        if not args.command:
            argv.insert(1, "-t")
        os.execvp(argv[0], argv)
    elif args.action == "console":
        print(lab.instance(args.name).console_tail(args.lines))
    elif args.action == "ask":
        return _ask(lab.instance(args.name), args.prompt, args.port, args.max_tokens)
    return 0


def _ask(inst: lab.Instance, prompt: str, port: int, max_tokens: int) -> int:
    """Ask the lab's model server a question through an SSH tunnel to its NodePort, and say
    how to reach what the node serves."""
    from airnode.serving.health import Client, HealthError

    if inst.pid() is None:
        raise lab.LabError("the lab VM is not running: `./dev lab` deploys it")
    with inst.tunnel(port) as url:
        client = Client(url, timeout=600)
        try:
            models = client.ollama_models()
            model = models[0]
            answer = client.ollama_generate(model, prompt, max_tokens=max_tokens)
            api = "Ollama API (/api/*) and OpenAI API (/v1/*)"
        except HealthError:
            model = client.openai_models()[0]
            answer = client.openai_complete(model, prompt, max_tokens=max_tokens)
            api = "OpenAI API (/v1/*), llama-server"
    cfg = inst.ssh_config
    print(
        f"\n{model} was asked: {prompt}\n  {answer.strip()}\n\n"
        f"The model server ({api}) listens on the node's port {port}. From here:\n"
        f"  ssh -F {cfg} -o ControlPath=none -N -L {port}:127.0.0.1:{port} {lab.SSH_ALIAS} &\n"
        f"  curl http://127.0.0.1:{port}/api/tags\n"
        "Grafana and Open WebUI run as Deployments, which the lab's k0s stand-in does not\n"
        "start (tests/doubles/README.md); on a real node: `k0s kubectl -n monitoring\n"
        "port-forward svc/grafana 3000`, and Open WebUI on port 31080 with open_webui = true."
    )
    return 0


def _bundle(args: argparse.Namespace) -> int:
    from airnode.bundle import fetch, manifest, spec, trust

    root = Path(args.dir)
    try:
        if args.action == "fetch":
            s = spec.load(Path(args.spec))
            data = fetch.fetch(s, root, with_images=not args.no_images)
            print(manifest.table(data))
            report = manifest.verify(root, data)
            if report.ok:
                print(f"pin it in the inventory (group_data): {trust.pin_line(root)}")
        elif args.action == "digest":
            manifest.load(root)
            print(trust.digest(root))
            return 0
        elif args.action == "sign":
            manifest.load(root)
            print(f"signed: {trust.sign(root, Path(args.key))}")
            return 0
        else:
            data = manifest.load(root)
            if args.action == "show":
                print(manifest.table(data))
                return 0
            report = manifest.verify(root, data)
    except (
        spec.SpecError,
        manifest.ManifestError,
        fetch.FetchError,
        trust.TrustError,
        OSError,
    ) as e:
        print(f"airnode: {e}", file=sys.stderr)
        return 1
    if not report.ok:
        print(f"bundle {root} is NOT intact:", file=sys.stderr)
        for line in report.lines():
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"bundle {root}: {len(data['artifacts'])} artifacts verified (sha256)")
    return 0


def _check(args: argparse.Namespace) -> int:
    from airnode.serving.health import SMOKE_PROMPT, HealthError, check

    try:
        report = check(
            args.url,
            args.model,
            args.api,
            prompt=args.prompt or SMOKE_PROMPT,
            ready_timeout=args.timeout,
            timeout=args.timeout,
        )
    except HealthError as e:
        print(f"airnode: UNHEALTHY: {e}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 0


def _settings(markdown: bool) -> int:
    from airnode import steps

    if markdown:
        print(steps.settings_table(), end="")
        return 0
    from airnode.steps import _common

    for key, s in steps.declared().items():
        print(f"{key} = {s.default!r}  [{_common.OWNER[key]}]\n    {s.rule.allowed}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="airnode", description=__doc__)
    sub = p.add_subparsers(dest="group", required=True)
    lp = sub.add_parser("lab", help="the throwaway, air-gapped lab VM (QEMU)")
    lsub = lp.add_subparsers(dest="action", required=True)
    lsub.add_parser("build", help="build (or find in the cache) the lab VM image")
    sp = lsub.add_parser("start", help="boot a fresh throwaway lab VM and wait for SSH")
    sp.add_argument("--name", default="default")
    sp.add_argument("--memory", type=int, default=4096, help="MiB (default 4096)")
    sp.add_argument("--cpus", type=int, default=2)
    sp.add_argument(
        "--accel",
        choices=["auto", "kvm", "tcg"],
        default=None,
        help="default: $AIRNODE_LAB_ACCEL or auto (KVM where it works, else TCG)",
    )
    sp.add_argument(
        "--cluster",
        default="",
        help="a VM of the lab cluster of that name: a second NIC on the cluster's own network "
        "(inventories/lab_cluster.py deploys it; the first is the controller)",
    )
    sp.add_argument(
        "--index",
        type=int,
        default=1,
        choices=range(1, 251),
        metavar="N",
        help="its number in the cluster (1..250): hostname airnode-lab-N, address 10.77.0.N",
    )
    for action, helptext in (
        ("stop", "stop the VM and throw its disk away"),
        ("status", "is it running, and where"),
    ):
        lsub.add_parser(action, help=helptext).add_argument("--name", default="default")
    shp = lsub.add_parser("shell", help="a root shell (or one command) in the VM")
    shp.add_argument("--name", default="default")
    shp.add_argument("command", nargs=argparse.REMAINDER)
    cp = lsub.add_parser("console", help="tail of the guest's serial console")
    cp.add_argument("--name", default="default")
    cp.add_argument("--lines", type=int, default=40)
    ap = lsub.add_parser("ask", help="ask the lab node's model server a question (SSH tunnel)")
    ap.add_argument("--name", default="default")
    ap.add_argument("--port", type=int, default=31434, help="the model server's NodePort")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("prompt", nargs="?", default="The capital of France is")
    bp = sub.add_parser("bundle", help="the offline bundle: fetch (connected), verify, show")
    bsub = bp.add_subparsers(dest="action", required=True)
    fp = bsub.add_parser("fetch", help="download every artifact of a spec into DIR (resumable)")
    fp.add_argument("dir")
    fp.add_argument(
        "--spec",
        default=str(ROOT / "bundle.toml"),
        help="bundle spec (default: bundle.toml in the project)",
    )
    fp.add_argument(
        "--no-images", action="store_true", help="skip container images (no skopeo needed)"
    )
    bsub.add_parser(
        "verify", help="re-check sizes and sha256; name missing, extra, corrupt files"
    ).add_argument("dir")
    bsub.add_parser("show", help="the bundle's contents as a table").add_argument("dir")
    bsub.add_parser(
        "digest",
        help="bundle.json's sha256: what bundle_sha256 pins (compare with what fetch printed)",
    ).add_argument("dir")
    sp = bsub.add_parser(
        "sign",
        help="sign bundle.json with an SSH key (bundle.json.sig; "
        "nodes trust it through bundle_allowed_signers)",
    )
    sp.add_argument("--key", required=True, help="the SSH private key")
    sp.add_argument("dir")
    kp = sub.add_parser("check", help="health and smoke check of a model server over HTTP")
    kp.add_argument(
        "url", help="e.g. http://NODE:11434 (Ollama) or http://NODE:8080 (llama-server)"
    )
    kp.add_argument(
        "--model", action="append", default=[], help="a model that must answer (repeat for more)"
    )
    kp.add_argument(
        "--api",
        choices=["ollama", "openai"],
        default="ollama",
        help="Ollama's own API, or the OpenAI-compatible one (llama-server)",
    )
    kp.add_argument("--prompt", help="the smoke prompt (default: the deploy's own)")
    kp.add_argument("--timeout", type=float, default=120)
    tp = sub.add_parser("settings", help="every setting: default, what is allowed, what it does")
    tp.add_argument(
        "--markdown", action="store_true", help="the table of docs/settings.md, as generated"
    )
    args = p.parse_args(argv)
    if args.group == "settings":
        return _settings(args.markdown)
    if args.group == "bundle":
        return _bundle(args)
    if args.group == "check":
        return _check(args)
    try:
        return _lab(args)
    except lab.LabError as e:
        print(f"airnode: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
