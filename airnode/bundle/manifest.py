"""The bundle manifest (bundle.json): every artifact's kind, version, file, size and sha256.

Written by ``airnode bundle fetch``; checked by ``airnode bundle verify``, by the deploy before
any change on a host, and on the node after upload. Pure: file reads only, no pyinfra.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from airnode.bundle import rules, spec

MANIFEST = "bundle.json"
FORMAT = 1


class ManifestError(ValueError):
    pass


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def entry(
    kind: str,
    name: str,
    version: str,
    file: str,
    root: Path,
    source: str | None,
    verified_by: str,
    sha256: str | None = None,
) -> dict:
    path = root / file
    return {
        "kind": kind,
        "name": name,
        "version": version,
        "file": file,
        "size": path.stat().st_size,
        "sha256": sha256 or sha256_file(path),
        "source": source,
        "verified_by": verified_by,
    }


def write(
    root: Path, arch: str, artifacts: list[dict], images: dict[str, list[str]], spec: dict
) -> dict:
    data = {
        "format": FORMAT,
        "arch": arch,
        "artifacts": sorted(artifacts, key=lambda a: a["file"]),
        "images": {k: sorted(v) for k, v in sorted(images.items())},
        "spec": spec,
    }
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.rename(root / MANIFEST)
    return data


def load(root: Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{path} not found: is {root} a bundle made by `airnode bundle fetch`?")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else data
        raise ManifestError(f"{path}: format {got!r}, this airnode reads {FORMAT}")
    # every field, strictly, before anything uses one (airnode/bundle/rules.py)
    try:
        rules.manifest(data)
    except rules.BundleValueError as e:
        raise ManifestError(f"{path}: {e}") from None
    if data.get("spec"):  # what the node uses from it (images) is read only from a valid one
        try:
            spec.parse(data["spec"])
        except spec.SpecError as e:
            raise ManifestError(f"{path}: spec: {e}") from None
    return data


@dataclass
class Report:
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.extra)

    def lines(self) -> list[str]:
        return (
            [f"missing: {m}" for m in self.missing]
            + [f"corrupt: {c}" for c in self.corrupt]
            + [f"extra:   {e}" for e in self.extra]
        )


def verify(
    root: Path,
    data: dict | None = None,
    check_extra: bool = True,
    digest: Callable[[Path], str] | None = None,
) -> Report:
    """Re-check every artifact's size and sha256; name every missing, corrupt or extra file.
    ``digest``: how a file's sha256 is had (default: read every byte; a deploy passes
    airnode.bundle.digests.DigestCache.sha256, which reads only files whose status changed)."""
    digest = digest or sha256_file
    root = Path(root)
    data = data or load(root)
    report = Report()
    listed = set()
    for a in data["artifacts"]:
        listed.add(a["file"])
        path = root / a["file"]
        label = f"{a['file']} ({a['kind']} {a['name']} {a.get('version', '')})".replace(" )", ")")
        if not path.is_file():
            report.missing.append(label)
        elif path.stat().st_size != a["size"]:
            report.corrupt.append(f"{label}: size {path.stat().st_size}, expected {a['size']}")
        else:
            got = digest(path)
            if got != a["sha256"]:
                report.corrupt.append(f"{label}: sha256 {got[:16]}…, expected {a['sha256'][:16]}…")
    if check_extra:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and rel not in (MANIFEST, MANIFEST + ".sig") and rel not in listed:
                report.extra.append(rel)
    return report


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def table(data: dict) -> str:
    rows = [("KIND", "NAME", "VERSION", "SIZE", "SHA256", "VERIFIED BY", "FILE")]
    for a in data["artifacts"]:
        rows.append(
            (
                a["kind"],
                a["name"],
                a.get("version", ""),
                human(a["size"]),
                a["sha256"][:12],
                a.get("verified_by", ""),
                a["file"],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows]
    total = sum(a["size"] for a in data["artifacts"])
    lines.append(f"{len(data['artifacts'])} artifacts, {human(total)}, arch {data['arch']}")
    for group, refs in data.get("images", {}).items():
        lines.append(f"images ({group}): {len(refs)}")
        lines += [f"  {r}" for r in refs]
    return "\n".join(lines)
