"""Where a whole-node deploy spends its time (not a test): `./dev lab`'s deploy on a fresh lab
VM, each operation timed from pyinfra's own progress lines, then a no-op re-run (and with
--teardown, deploys/teardown.py after them).

    .venv/bin/python bench/deploy_profile.py [--top 25] [--teardown]

Prints, for each run: the wall time, the plan phase (until pyinfra starts
the first operation: facts, the prefetch batch, rendering) and the operations that took
longest. A second VM or other CPU work beside it slows everything (the lab runs on TCG).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airnode import lab  # noqa: E402
from airnode.bundle import trust  # noqa: E402

PYINFRA = str(Path(sys.executable).parent / "pyinfra")
STARTING = re.compile(r"--> Starting operation: (.*)$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def timed_run(
    inst: lab.Instance, bundle: Path, deploy: str = "deploys/node.py"
) -> tuple[float, float, list[tuple[float, str]]]:
    """(wall, plan phase, [(seconds, operation)]) of one deploy."""
    env = dict(os.environ, AIRNODE_LAB_DIR=str(inst.dir))
    argv = [
        PYINFRA,
        "-y",
        "--data",
        f"bundle_dir={bundle}",
        "--data",
        f"bundle_sha256={trust.digest(bundle)}",
        str(ROOT / "inventories/lab.py"),
        str(ROOT / deploy),
    ]
    started = time.monotonic()
    p = subprocess.Popen(
        argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    assert p.stderr is not None
    marks: list[tuple[float, str]] = []
    for line in p.stderr:
        m = STARTING.search(ANSI.sub("", line).strip())
        if m:
            marks.append((time.monotonic(), m.group(1)))
    p.wait()
    end = time.monotonic()
    if p.returncode != 0:
        raise SystemExit(f"deploy failed (exit {p.returncode})")
    ends = [at for at, _ in marks[1:]] + ([end] if marks else [])  # a no-op may start none
    ops = [(nxt - at, name) for (at, name), nxt in zip(marks, ends, strict=True)]
    plan = (marks[0][0] - started) if marks else end - started
    return end - started, plan, ops


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument(
        "--teardown", action="store_true", help="then profile deploys/teardown.py as well"
    )
    args = ap.parse_args()
    bundle = Path(
        subprocess.run(
            [sys.executable, "-m", "tests.labbundle"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    with tempfile.TemporaryDirectory(prefix="airnode-profile-") as tmp:
        inst = lab.start(str(Path(tmp) / "vm"))
        try:
            runs = [
                ("first run (fresh VM)", "deploys/node.py"),
                ("re-run (no-op)", "deploys/node.py"),
            ]
            if args.teardown:
                runs.append(("teardown", "deploys/teardown.py"))
            for label, deploy in runs:
                wall, plan, ops = timed_run(inst, bundle, deploy)
                print(f"\n{label}: {wall:.1f} s, plan phase {plan:.1f} s, {len(ops)} operations")
                for seconds, name in sorted(ops, reverse=True)[: args.top]:
                    print(f"  {seconds:7.1f} s  {name}")
        finally:
            inst.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
