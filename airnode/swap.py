"""Disk swap: reading /proc/swaps and /etc/fstab, and switching disk swap off for good.

Pure: imports nothing from pyinfra. The deploy step feeds these functions with raw command
output read from the host and turns their answers into operations.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

# Prefix put in front of every fstab swap line we disable. Teardown removes exactly this
# prefix, which puts the line back byte for byte.
FSTAB_MARKER = "#airnode-swapoff# "

_TAG_DIRS = {
    "UUID": "by-uuid",
    "LABEL": "by-label",
    "PARTUUID": "by-partuuid",
    "PARTLABEL": "by-partlabel",
}


@dataclass(frozen=True)
class Swap:
    name: str
    type: str  # "file" or "partition"
    size_kb: int
    priority: int

    @property
    def is_zram(self) -> bool:
        return self.name.startswith("/dev/zram")


@dataclass(frozen=True)
class FstabSwap:
    lineno: int
    line: str
    device: str


def _unoctal(s: str) -> str:
    """/proc/swaps and fstab encode spaces and tabs as octal escapes (\\040, \\011)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def parse_proc_swaps(lines: list[str]) -> list[Swap]:
    out = []
    for line in lines:
        fields = line.split()
        if len(fields) < 5 or fields[0] == "Filename":
            continue
        out.append(Swap(_unoctal(fields[0]), fields[1], int(fields[2]), int(fields[4])))
    return out


def disk_swaps(swaps: list[Swap]) -> list[Swap]:
    """Active swaps that live on a disk (everything but zram)."""
    return [s for s in swaps if not s.is_zram]


def parse_numbered(lines: list[str]) -> list[tuple[int, str]]:
    """Parse ``grep -n '' FILE`` output into (line number, line) pairs."""
    out = []
    for raw in lines:
        num, sep, text = raw.partition(":")
        if sep and num.isdigit():
            out.append((int(num), text))
    return out


def fstab_swaps(numbered: list[tuple[int, str]]) -> list[FstabSwap]:
    """Active (not commented out) swap entries of /etc/fstab, zram excluded."""
    out = []
    for lineno, line in numbered:
        fields = line.split()
        if len(fields) < 3 or fields[0].startswith("#") or fields[2] != "swap":
            continue
        device = _unoctal(fields[0])
        if device.startswith("/dev/zram"):
            continue
        out.append(FstabSwap(lineno, line, device))
    return out


def device_path(spec: str) -> str:
    """fstab device spec to a path: UUID=x -> /dev/disk/by-uuid/x; paths unchanged."""
    tag, sep, value = spec.partition("=")
    if sep and tag in _TAG_DIRS:
        return f"/dev/disk/{_TAG_DIRS[tag]}/{value}"
    return spec


def unit_name(path: str) -> str:
    """systemd's swap unit for a path, as ``systemd-escape --path --suffix=swap`` prints it."""
    path = re.sub("/+", "/", path).strip("/") or "/"
    if path == "/":
        return "-.swap"
    out = []
    for i, ch in enumerate(path):
        if ch == "/":
            out.append("-")
        elif (ch.isascii() and (ch.isalnum() or ch in ":_.")) and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return "".join(out) + ".swap"


def units_to_mask(active: list[Swap]) -> list[str]:
    return sorted({unit_name(s.name) for s in disk_swaps(active)})


def comment_out_command(entries: list[FstabSwap], path: str = "/etc/fstab") -> str | None:
    """One sed command that puts FSTAB_MARKER before each entry's line, by line number.

    Each edit re-checks that the line is still a swap line, so a file changed since it was
    read is never mangled; every other byte of the file is left as it was.
    """
    if not entries:
        return None
    exprs = []
    for e in entries:
        exprs += [
            "-e",
            f"{e.lineno}{{/^[[:space:]]*#/!{{/[[:space:]]swap([[:space:]]|$)/"
            f"s/^/{FSTAB_MARKER}/}}}}",
        ]
    return "sed -E -i " + " ".join(shlex.quote(x) for x in exprs) + " " + shlex.quote(path)


def uncomment_command(linenos: list[int], path: str = "/etc/fstab") -> str | None:
    """Teardown: remove FSTAB_MARKER from those lines, which puts each back byte for byte."""
    if not linenos:
        return None
    exprs = []
    for n in linenos:  # the marker holds no sed-special character
        exprs += ["-e", f"{n}s/^{FSTAB_MARKER}//"]
    return "sed -i " + " ".join(shlex.quote(x) for x in exprs) + " " + shlex.quote(path)
