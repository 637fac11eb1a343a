"""Release tarballs are unpacked on the node as root: each member is checked first, here, and a
crafted tarball is refused naming the member that breaks a rule."""

from __future__ import annotations

import io
import stat
import subprocess
import tarfile

import pytest

from airnode.bundle import unpack


def tarball(path, *members, compress="gz"):
    """members: (name, type, mode, linkname)."""
    with tarfile.open(path, f"w:{compress}") as tar:
        for name, kind, mode, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname = kind, mode, link
            data = b"#!/bin/sh\n" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return path


OLLAMA = [
    ("bin", tarfile.DIRTYPE, 0o755, ""),
    ("bin/ollama", tarfile.REGTYPE, 0o755, ""),
    ("lib/ollama/libggml.so.1", tarfile.REGTYPE, 0o644, ""),
    ("lib/ollama/libggml.so", tarfile.SYMTYPE, 0o777, "libggml.so.1"),
]


def test_a_release_shaped_tarball_passes(tmp_path):
    checked = unpack.check_tarball(tarball(tmp_path / "ollama-linux-amd64.tgz", *OLLAMA))
    assert checked.members == 4
    # the regular files' bytes: what unpacking writes (links and directories count nothing)
    regular = [m for m in OLLAMA if m[1] == tarfile.REGTYPE]
    assert regular and checked.size == len(regular) * len(b"#!/bin/sh\n")


def test_a_zstd_tarball_is_read_through_zstd(tmp_path):
    plain = tarball(tmp_path / "o.tar", *OLLAMA, compress="")
    subprocess.run(["zstd", "-q", str(plain), "-o", str(tmp_path / "o.tar.zst")], check=True)
    assert unpack.check_tarball(tmp_path / "o.tar.zst").members == 4
    bad = tarball(tmp_path / "b.tar", ("../x", tarfile.REGTYPE, 0o644, ""), compress="")
    subprocess.run(["zstd", "-q", str(bad), "-o", str(tmp_path / "b.tar.zst")], check=True)
    with pytest.raises(unpack.UnsafeTarball, match="b.tar.zst: member '../x'"):
        unpack.check_tarball(tmp_path / "b.tar.zst")


@pytest.mark.parametrize(
    "member, why",
    [
        (("bin/ollama", tarfile.REGTYPE, 0o4755, ""), "mode 4755 has a setuid"),
        (("bin/sg", tarfile.REGTYPE, 0o2755, ""), "setgid"),
        (("tmp", tarfile.DIRTYPE, 0o1777, ""), "sticky"),
        (("dev/sda", tarfile.BLKTYPE, 0o600, ""), "a device node"),
        (("dev/mem", tarfile.CHRTYPE, 0o600, ""), "a device node"),
        (("pipe", tarfile.FIFOTYPE, 0o600, ""), "a FIFO"),
        (("bin/passwd", tarfile.LNKTYPE, 0o644, "/etc/passwd"), "a hard link"),
        (("../../etc/cron.d/x", tarfile.REGTYPE, 0o644, ""), "leaves the unpack directory"),
        (("/etc/shadow", tarfile.REGTYPE, 0o644, ""), "leaves the unpack directory"),
        (("lib/etc", tarfile.SYMTYPE, 0o777, "/etc"), "a symlink to '/etc'"),
        (("lib/up", tarfile.SYMTYPE, 0o777, "../../.."), "outside the unpack directory"),
    ],
)
def test_a_crafted_member_is_refused_naming_it(tmp_path, member, why):
    path = tarball(tmp_path / "ollama-linux-amd64.tgz", *OLLAMA, member)
    with pytest.raises(unpack.UnsafeTarball) as e:
        unpack.check_tarball(path)
    assert f"ollama-linux-amd64.tgz: member {member[0]!r}: " in str(e.value)
    assert why in str(e.value)


def test_what_is_not_a_tarball_is_named(tmp_path):
    (tmp_path / "o.tgz").write_bytes(b"not a tarball")
    with pytest.raises(unpack.UnsafeTarball, match="o.tgz: not a readable tarball"):
        unpack.check_tarball(tmp_path / "o.tgz")


def test_the_nodes_tar_applies_no_owner_and_no_bit_beyond_the_umask(tmp_path):
    # GNU tar itself, as root, with the flags the node's unpack uses
    path = tarball(tmp_path / "t.tgz", ("f", tarfile.REGTYPE, 0o4777, ""))
    with tarfile.open(path, "w:gz") as tar:  # owned by uid 4242 in the archive
        info = tarfile.TarInfo("f")
        info.mode, info.uid, info.size = 0o4777, 4242, 1
        tar.addfile(info, io.BytesIO(b"x"))
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        f"umask 022 && tar -xz {unpack.TAR_SAFE} -f {path} -C {out}", shell=True, check=True
    )
    st = (out / "f").stat()
    assert st.st_uid == 0 and not st.st_mode & stat.S_ISUID
