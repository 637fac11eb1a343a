"""The lab VM's accelerator fallback: a guest that prints nothing on its console is given up on
quickly (KVM here hangs silently), one that prints is waited for."""

from __future__ import annotations

import threading
import time

import pytest

from airnode import lab


def test_a_silent_console_is_given_up_on_within_its_bound(tmp_path):
    inst = lab.Instance(tmp_path)
    inst.console.write_text("")
    started = time.monotonic()
    with pytest.raises(lab.LabError, match="no output on the guest console after 1s"):
        inst.wait_console(1)
    assert time.monotonic() - started < 3


def test_a_console_that_speaks_is_waited_for(tmp_path):
    inst = lab.Instance(tmp_path)
    inst.console.write_text("")
    threading.Timer(0.6, lambda: inst.console.write_text("Linux version 6.1\n")).start()
    inst.wait_console(5)
    assert inst.console.read_text().startswith("Linux")


def test_kvm_that_failed_once_is_not_tried_again_until_the_host_reboots(tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "CACHE", tmp_path)
    monkeypatch.setattr(lab.os, "access", lambda path, mode: path == "/dev/kvm")
    boot = ["boot-1"]
    monkeypatch.setattr(lab, "_boot_id", lambda: boot[0])
    assert lab.kvm_usable()
    lab._remember_kvm_failed()
    assert not lab.kvm_usable()  # the same boot: straight to TCG
    boot[0] = "boot-2"
    assert lab.kvm_usable()  # rebooted (a new kernel, maybe a fixed KVM): tried again


def test_a_saved_boot_is_kept_apart_per_accelerator_memory_and_cpus(tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "_qemu_version", lambda: "QEMU emulator version 7.2.22\n")
    monkeypatch.setenv("AIRNODE_LAB_TCG_THREAD", "multi")  # the suite's lab conftest sets single
    base = lab.saved_boot_dir(tmp_path, "tcg", 4096, 2)
    assert base == lab.saved_boot_dir(tmp_path, "tcg", 4096, 2)
    others = {
        lab.saved_boot_dir(tmp_path, "kvm", 4096, 2),
        lab.saved_boot_dir(tmp_path, "tcg", 2048, 2),
        lab.saved_boot_dir(tmp_path, "tcg", 4096, 4),
    }
    assert base not in others and len(others) == 3
    # a guest saved with its vCPUs on threads of their own is not resumed on one thread
    monkeypatch.setenv("AIRNODE_LAB_TCG_THREAD", "single")
    single = lab.saved_boot_dir(tmp_path, "tcg", 4096, 2)
    assert single != base and single not in others
    monkeypatch.setenv("AIRNODE_LAB_TCG_THREAD", "multi")
    # another QEMU restores nothing saved by this one
    monkeypatch.setattr(lab, "_qemu_version", lambda: "QEMU emulator version 8.2.2\n")
    assert lab.saved_boot_dir(tmp_path, "tcg", 4096, 2) != base


def test_tcg_threading_is_multi_unless_set_and_a_wrong_value_is_refused(monkeypatch):
    monkeypatch.delenv("AIRNODE_LAB_TCG_THREAD", raising=False)
    assert lab.tcg_thread() == "multi"
    monkeypatch.setenv("AIRNODE_LAB_TCG_THREAD", "single")
    assert lab.tcg_thread() == "single"
    monkeypatch.setenv("AIRNODE_LAB_TCG_THREAD", "one")
    with pytest.raises(lab.LabError, match=r"AIRNODE_LAB_TCG_THREAD='one'.*multi, single"):
        lab.start("unit-never-started")


def test_a_monitor_command_waits_for_the_next_prompt(tmp_path):
    """`migrate` without -d holds QEMU's monitor until the migration ends: hmp() returns only
    once the next prompt comes, with what the command printed."""
    import socket

    inst = lab.Instance(tmp_path)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "monitor.sock"))
    server.listen(1)
    got = []

    def qemu():
        conn, _ = server.accept()
        conn.sendall(b"QEMU 7.2.22 monitor - type 'help' for more information\r\n(qemu) ")
        got.append(conn.recv(1024))
        conn.sendall(b"migrate ...\r\n")
        time.sleep(0.5)  # the migration runs
        conn.sendall(b"(qemu) ")
        conn.close()

    threading.Thread(target=qemu).start()
    started = time.monotonic()
    out = inst.hmp('migrate "exec:cat > /x"', timeout=5)
    assert time.monotonic() - started >= 0.5
    assert got == [b'migrate "exec:cat > /x"\n']
    assert out.startswith("migrate ...")
    server.close()


def test_a_boot_that_could_not_be_saved_is_not_tried_again(tmp_path, monkeypatch):
    """A failed save costs one boot once, not a second boot at every start."""
    monkeypatch.setattr(lab, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(lab, "_qemu_version", lambda: "QEMU emulator version 7.2.22\n")
    monkeypatch.setattr(lab, "_fresh_disk", lambda img, inst: None)
    boots = []

    def boot(*args, **kw):
        boots.append(args)
        raise lab.LabError("no SSH after 600s")

    monkeypatch.setattr(lab, "_boot", boot)
    img = tmp_path / "image"
    img.mkdir()
    assert lab._save_boot(img, "tcg", 4096, 2, False) is None
    assert lab._save_boot(img, "tcg", 4096, 2, False) is None
    assert len(boots) == 1
    mark = lab._failed_mark(lab.saved_boot_dir(img, "tcg", 4096, 2))
    assert "no SSH after 600s" in mark.read_text()
    # another variant (a cluster VM's, with its slot) is its own try
    assert lab._save_boot(img, "tcg", 4096, 2, True) is None
    assert len(boots) == 2


def test_ssh_to_a_lab_vm_shares_one_connection_unless_the_socket_path_is_too_long(tmp_path):
    short = lab.Instance(tmp_path / "vm")
    text = lab._shared_connection(short)
    assert "ControlMaster auto" in text and f'ControlPath "{tmp_path / "vm" / "mux"}"' in text
    assert "ServerAliveInterval" in text  # a master whose guest vanished ends
    deep = lab.Instance(tmp_path / ("d" * (lab.UNIX_PATH_MAX - len(str(tmp_path)))))
    assert lab._shared_connection(deep) == ""
