"""Restart on change, case by case: the one decision zram, containerd and k0s use."""

from airnode.restart import decide


def test_first_run_restarts_and_records():
    d = decide("w1", "", changed=True)
    assert d.restart and d.record


def test_nothing_changed_nothing_done():
    d = decide("w1", "w1", changed=False)
    assert not d.restart and not d.record and not d
    assert d.why == "unchanged since its last start"


def test_a_changed_configuration_restarts():
    d = decide("w2", "w1", changed=True)
    assert d.restart and d.record


def test_a_run_cut_between_the_write_and_the_restart_restarts_next_time():
    # the file was written by the cut run (nothing changes now), the record is the old one
    d = decide("w2", "w1", changed=False)
    assert d.restart and d.record and d.why == "a run was cut before its restart"


def test_a_service_with_no_record_yet_is_restarted_once():
    d = decide("w1", "", changed=False)
    assert d.restart and d.why == "no start recorded yet"


def test_a_stopped_service_records_only():
    d = decide("w2", "w1", changed=True, running=False)
    assert not d.restart and d.record
    assert not decide("w1", "w1", running=False)
