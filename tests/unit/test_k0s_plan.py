"""The k0s step's decisions (airnode.k0s.plan), case by case."""

from __future__ import annotations

import pytest

from airnode import k0s

FLAGS = k0s.install_flags(["metrics-server"], [])
UNIT = "[Service]\nExecStart=/usr/local/bin/k0s controller " + " ".join(FLAGS) + "\n"
RUNNING = {"Args": ["/usr/local/bin/k0s", "controller", *FLAGS]}
SHA = "a" * 64


def plan(**kw):
    args = dict(
        binary_sha=SHA,
        have_sha=SHA,
        flags=FLAGS,
        status=RUNNING,
        unit_text=UNIT,
        config_changes=False,
        want="w",
        applied="w",
    )
    args.update(kw)
    return k0s.plan(**args)


def test_fresh_node_installs_everything_and_waits():
    p = plan(have_sha="", status=None, unit_text="", config_changes=True, applied="")
    assert p.install_binary and p.validate and p.install == "install"
    assert p.restart and p.wait
    assert not p.start  # not installed yet: `k0s install` then the restart starts it


def test_nothing_changed_does_nothing():
    p = plan()
    assert p == k0s.Plan(False, False, "", False, False, False, "unchanged since its last start")


def test_a_changed_config_is_validated_then_restarted():
    p = plan(config_changes=True, want="w2")
    assert p.validate and p.restart and p.wait
    assert not p.install_binary and p.install == ""


def test_changed_flags_reinstall_with_force_and_restart():
    p = plan(flags=k0s.install_flags(["metrics-server", "helm"], []), want="w2")
    assert p.install == "reinstall" and p.restart and p.wait


def test_a_new_binary_is_installed_and_restarted():
    p = plan(binary_sha="b" * 64, want="w2")
    assert p.install_binary and p.restart and p.wait and p.install == ""


def test_a_run_cut_between_the_change_and_the_restart_restarts_next_time():
    # the config was written and the binary replaced, but the record still holds the old state
    p = plan(want="w2", applied="w")
    assert p.restart and p.validate and p.wait
    assert "cut" in p.why


def test_installed_but_stopped_is_started_and_waited_for():
    p = plan(status=None)
    assert p.start and p.wait and not p.restart and p.install == ""


@pytest.mark.parametrize("status", [None, RUNNING])
def test_flags_are_compared_with_the_running_k0s_or_else_its_unit(status):
    other = k0s.install_flags(["metrics-server"], ["--debug"])
    assert plan(flags=other, status=status).install == "reinstall"
