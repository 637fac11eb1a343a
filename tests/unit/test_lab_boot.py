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
