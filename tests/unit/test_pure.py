"""Pure logic imports nothing from pyinfra (so it can be reused and tested directly)."""

import subprocess
import sys

import pytest

PURE = [
    "airnode.config",
    "airnode.sizing",
    "airnode.swap",
    "airnode.hosts",
    "airnode.preflight",
    "airnode.sysctl",
    "airnode.render",
    "airnode.lab",
    "airnode.paths",
    "airnode.bundle.spec",
    "airnode.bundle.images",
    "airnode.bundle.manifest",
    "airnode.bundle.ship",
    "airnode.bundle.fetch",
    "airnode.cli",
    "airnode.containerd",
    "airnode.k0s",
    "airnode.serving.health",
    "airnode.serving.manifests",
]


@pytest.mark.parametrize("module", PURE)
def test_pure_module_does_not_import_pyinfra(module):
    code = (
        f"import sys, {module}; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pyinfra', 'pyinfra_cli')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
