"""Release tarballs (Ollama's, containerd's static one) are unpacked on the node as root. Before
that, every member is checked on the machine running pyinfra: only regular files, directories
and symlinks that stay inside the unpack directory; no device, FIFO or hard link; no setuid,
setgid or sticky bit; no absolute name, no '..'. A tarball that breaks a rule is refused with the
member named, before any change. The node's tar then runs with --no-same-owner and
--no-same-permissions (owners from the archive and bits beyond the umask are not applied).

The check reads the whole tarball, so it runs only when the tarball is about to be unpacked (a
new version), never on a no-op run.
"""

from __future__ import annotations

import posixpath
import stat
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

# GNU tar as root keeps owners and all permission bits by default: these turn both off
TAR_SAFE = "--no-same-owner --no-same-permissions"


class UnsafeTarball(ValueError):
    pass


def _problem(m: tarfile.TarInfo) -> str | None:
    name = m.name
    if name.startswith("/") or ".." in name.split("/"):
        return "its name leaves the unpack directory"
    if not (m.isfile() or m.isdir() or m.issym()):
        kind = (
            "a hard link"
            if m.islnk()
            else "a device node"
            if m.ischr() or m.isblk()
            else "a FIFO"
            if m.isfifo()
            else f"of type {m.type!r}"
        )
        return f"it is {kind} (only files, directories and symlinks are unpacked)"
    if m.mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX):
        return f"mode {m.mode:04o} has a setuid, setgid or sticky bit"
    if m.issym():
        target = m.linkname
        where = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if target.startswith("/") or where == ".." or where.startswith("../"):
            return f"it is a symlink to {target!r}, outside the unpack directory"
    return None


@dataclass(frozen=True)
class Checked:
    members: int
    size: int  # bytes of its regular files: what unpacking it writes


def check_members(members) -> Checked:
    """Raise UnsafeTarball for the first member that breaks a rule; else how many there are
    and the bytes of their regular files."""
    n = size = 0
    for m in members:
        n += 1
        why = _problem(m)
        if why:
            raise UnsafeTarball(f"member {m.name!r}: {why}")
        if m.isfile():
            size += m.size
    return Checked(n, size)


def check_tarball(path: Path) -> Checked:
    """Check every member of a .tgz/.tar.gz or .tar.zst (zstd decompresses it: the same tool
    the node uses) without unpacking anything."""
    path = Path(path)
    try:
        if path.name.endswith(".zst"):
            with subprocess.Popen(
                ["zstd", "-dcq", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
            ) as p:
                assert p.stdout is not None and p.stderr is not None  # both PIPE
                with tarfile.open(fileobj=p.stdout, mode="r|") as tar:
                    checked = check_members(tar)
                p.stdout.read()  # let zstd finish
            if p.returncode != 0:
                raise UnsafeTarball(f"zstd could not read it: {p.stderr.read().decode()[-200:]}")
            return checked
        with tarfile.open(path, mode="r|*") as tar:
            return check_members(tar)
    except UnsafeTarball as e:
        raise UnsafeTarball(f"{path.name}: {e}") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise UnsafeTarball(f"{path.name}: not a readable tarball ({e})") from None


def read_member(tar: tarfile.TarFile, member: tarfile.TarInfo | str) -> bytes:
    """The bytes of a regular file in an archive (tarfile gives None for anything else)."""
    f = tar.extractfile(member)
    if f is None:
        name = member if isinstance(member, str) else member.name
        raise UnsafeTarball(f"{name}: not a regular file")
    return f.read()
