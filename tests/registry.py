"""A real container registry (Debian's docker-registry) on 127.0.0.1, for image fetch tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


class Registry:
    def __init__(self, workdir: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {workdir / 'data'}\nhttp:\n  addr: {self.host}\n"
        )

    def __enter__(self):
        exe = shutil.which("docker-registry")
        self.proc = subprocess.Popen(
            [exe, "serve", str(self.workdir / "config.yml")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not start")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)

    def push_layout(self, layout: Path, tag: str, ref: str) -> str:
        """Push an OCI layout's image to this registry; return the full reference."""
        full = f"{self.host}/{ref}"
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                f"oci:{layout}:{tag}",
                f"docker://{full}",
            ],
            check=True,
        )
        return full
