import shutil
import subprocess

import pytest

from airnode import swap

PROC_SWAPS = """\
Filename				Type		Size		Used		Priority
/swapfile                               file		65532		0		-2
/dev/sda2                               partition	2097148		1024		-3
/dev/zram0                              partition	1005564		0		100
/var/my\\040swap                         file		1024		0		-4
""".splitlines()


def test_parse_proc_swaps_and_keep_only_disk_swap():
    swaps = swap.parse_proc_swaps(PROC_SWAPS)
    assert [s.name for s in swaps] == ["/swapfile", "/dev/sda2", "/dev/zram0", "/var/my swap"]
    assert swaps[2].priority == 100 and swaps[1].type == "partition"
    assert [s.name for s in swap.disk_swaps(swaps)] == ["/swapfile", "/dev/sda2", "/var/my swap"]


FSTAB = [
    "# /etc/fstab: static file system information.",
    "UUID=1234-abcd /               ext4    errors=remount-ro 0       1",
    "/swapfile none swap sw 0 0",
    "  # /old.swap none swap sw 0 0",
    "UUID=9f2b-77 none\tswap\tsw\t0\t0",
    "/dev/zram0 none swap defaults 0 0",
    "/dev/sdb1 /data xfs defaults 0 2",
    "/swap2 none swap",
    "",
]


def numbered(lines):
    return swap.parse_numbered([f"{i}:{line}" for i, line in enumerate(lines, 1)])


def test_fstab_swaps_skip_comments_zram_and_other_filesystems():
    entries = swap.fstab_swaps(numbered(FSTAB))
    assert [(e.lineno, e.device) for e in entries] == [
        (3, "/swapfile"),
        (5, "UUID=9f2b-77"),
        (8, "/swap2"),
    ]


def test_device_path():
    assert swap.device_path("UUID=9f2b-77") == "/dev/disk/by-uuid/9f2b-77"
    assert swap.device_path("PARTLABEL=swap") == "/dev/disk/by-partlabel/swap"
    assert swap.device_path("/dev/sda2") == "/dev/sda2"


@pytest.mark.parametrize(
    "path, unit",
    [
        ("/swapfile", "swapfile.swap"),
        ("/dev/sda2", "dev-sda2.swap"),
        ("/var/my swap", "var-my\\x20swap.swap"),
        ("/dev/disk/by-uuid/9f2b-77", "dev-disk-by\\x2duuid-9f2b\\x2d77.swap"),
        ("/.hidden/swap", "\\x2ehidden-swap.swap"),
        ("//double//slash/", "double-slash.swap"),
    ],
)
def test_unit_name(path, unit):
    assert swap.unit_name(path) == unit


@pytest.mark.skipif(not shutil.which("systemd-escape"), reason="systemd-escape not installed")
@pytest.mark.parametrize(
    "path",
    [
        "/swapfile",
        "/var/my swap",
        "/dev/disk/by-uuid/9f2b-77",
        "/.hidden/swap",
        "/srv/ü-swap",
        "/a:b_c.d",
    ],
)
def test_unit_name_matches_systemd_escape(path):
    real = subprocess.run(
        ["systemd-escape", "--path", "--suffix=swap", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert swap.unit_name(path) == real


def test_comment_out_keeps_every_other_byte(tmp_path):
    text = "\n".join(FSTAB)  # note: last line has no newline, tabs and odd spacing kept
    f = tmp_path / "fstab"
    f.write_bytes(text.encode())
    cmd = swap.comment_out_command(swap.fstab_swaps(numbered(FSTAB)), path=str(f))
    subprocess.run(cmd, shell=True, check=True)
    after = f.read_bytes().decode().split("\n")
    before = text.split("\n")
    assert len(after) == len(before)
    for i, (b, a) in enumerate(zip(before, after, strict=False), 1):
        if i in (3, 5, 8):
            assert a == swap.FSTAB_MARKER + b
        else:
            assert a == b
    # A second pass finds nothing left to do.
    assert swap.fstab_swaps(numbered(after)) == []
    # Teardown's inverse restores the file byte for byte.
    restored = [a.removeprefix(swap.FSTAB_MARKER) for a in after]
    assert "\n".join(restored) == text


def test_comment_out_never_touches_a_line_that_changed_meanwhile(tmp_path):
    f = tmp_path / "fstab"
    f.write_text("/swapfile none swap sw 0 0\n")
    cmd = swap.comment_out_command(
        swap.fstab_swaps(numbered(["/swapfile none swap sw 0 0"])), path=str(f)
    )
    f.write_text("/dev/sdb1 /data xfs defaults 0 2\n")  # line 1 is no longer swap
    subprocess.run(cmd, shell=True, check=True)
    assert f.read_text() == "/dev/sdb1 /data xfs defaults 0 2\n"


def test_nothing_to_comment_out():
    assert swap.comment_out_command([]) is None


def test_teardown_uncomments_exactly_the_marked_lines_byte_for_byte(tmp_path):
    import subprocess

    from airnode.swap import comment_out_command, fstab_swaps, parse_numbered, uncomment_command

    original = (
        "# a comment\nUUID=abc / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n"
        "/dev/sdb2\tnone\tswap\tsw,pri=5\t0\t0\n#/old none swap sw 0 0\n"
    )
    fstab = tmp_path / "fstab"
    fstab.write_text(original)
    numbered = parse_numbered(
        subprocess.run(
            ["grep", "-n", "", str(fstab)], capture_output=True, text=True
        ).stdout.splitlines()
    )
    subprocess.run(["sh", "-c", comment_out_command(fstab_swaps(numbered), str(fstab))], check=True)
    marked = fstab.read_text()
    assert marked.count("#airnode-swapoff# ") == 2
    lines = [
        n for n, line in enumerate(marked.splitlines(), 1) if line.startswith("#airnode-swapoff# ")
    ]
    subprocess.run(["sh", "-c", uncomment_command(lines, str(fstab))], check=True)
    assert fstab.read_text() == original
    assert uncomment_command([]) is None
