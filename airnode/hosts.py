"""/etc/hosts: does the node's hostname resolve locally? Pure: imports nothing from pyinfra."""

from __future__ import annotations


def names_by_address(lines: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            out.setdefault(fields[0], set()).update(fields[1:])
    return out


def hostname_resolves(lines: list[str], hostname: str) -> bool:
    """True when some /etc/hosts line maps ``hostname`` to an address."""
    return any(hostname in names for names in names_by_address(lines).values())


def hosts_line(address: str, hostname: str) -> str:
    short = hostname.split(".", 1)[0]
    return f"{address} {hostname}" + (f" {short}" if short != hostname else "")
