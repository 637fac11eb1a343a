"""Teardown deletes only what airnode made: files/owned-dirs.sh records the directories it
creates (never one that was there), and record.removal decides, case by case, what of a
directory setting may go."""

from __future__ import annotations

import subprocess

from airnode import record
from airnode.paths import FILES


def owned_dirs(tmp_path, *dirs):
    rec = tmp_path / "state" / "created"
    subprocess.run(
        ["sh", str(FILES / "owned-dirs.sh"), str(rec), "750", "root:root", *map(str, dirs)],
        check=True,
    )
    return rec.read_text().splitlines() if rec.exists() else []


def test_the_top_most_directory_created_is_recorded_once(tmp_path):
    target = tmp_path / "srv" / "airnode" / "bundle"
    assert owned_dirs(tmp_path, target) == [str(tmp_path / "srv")]
    assert target.is_dir() and oct(target.stat().st_mode)[-3:] == "750"
    assert owned_dirs(tmp_path, target, target / "models") == [
        str(tmp_path / "srv"),
        str(target / "models"),
    ]


def test_a_directory_that_was_there_is_not_recorded_but_what_is_made_inside_it_is(tmp_path):
    usb = tmp_path / "usb"
    usb.mkdir()
    (usb / "photos").mkdir()
    assert owned_dirs(tmp_path, usb, usb / "photos", usb / "models") == [str(usb / "models")]


def test_a_name_with_spaces_or_shell_is_made_literally(tmp_path):
    odd = tmp_path / "a b" / "$(touch x)"
    owned_dirs(tmp_path, odd)
    assert odd.is_dir() and not (tmp_path / "x").exists()


def test_airnode_made_it_when_it_or_a_directory_it_is_in_was_recorded():
    made = ["/srv/airnode", "/mnt/usb/bundle/models"]
    assert record.made_by_airnode("/srv/airnode/bundle", made)
    assert record.made_by_airnode("/var/lib/airnode/models", [])  # airnode's own state dir
    assert not record.made_by_airnode("/srv/airnode2", made)
    assert not record.made_by_airnode("/mnt/usb", made)
    assert not record.made_by_airnode("/srv", ["", " "])  # blank lines count for nothing


def test_a_directory_airnode_made_goes_whole():
    r = record.removal("/srv/airnode/bundle", ["/srv/airnode"], ["/var/lib/airnode/models"])
    assert (r.tree, r.entries) == ("/srv/airnode/bundle", [])
    assert "rm -rf /srv/airnode/bundle" in record.removal_command(r)
    assert "mountpoint -q /srv/airnode/bundle" in record.removal_command(r)


def test_of_a_directory_that_was_there_only_what_airnode_put_in_it_goes():
    made = ["/mnt/usb/models", "/mnt/usb/bundle.json", "/mnt/usb/k0s/k0s-v1", "/srv/other"]
    r = record.removal("/mnt/usb", made, ["/var/lib/airnode/models"])
    assert r.tree is None
    assert r.entries == ["/mnt/usb/k0s/k0s-v1", "/mnt/usb/bundle.json", "/mnt/usb/models"]
    assert "before airnode" in r.kept_because
    assert "rm -rf /mnt/usb;" not in record.removal_command(r) + ";"


def test_a_directory_holding_the_model_store_is_never_removed_whole():
    # bundle_remote_dir=/srv/airnode made by airnode, the store inside it (refused by the
    # settings now, but a node deployed before may have it)
    made = ["/srv/airnode", "/srv/airnode/ollama/v1.tgz"]
    r = record.removal("/srv/airnode", made, ["/srv/airnode/models"])
    assert r.tree is None and r.entries == ["/srv/airnode/ollama/v1.tgz"]
    assert "holds /srv/airnode/models" in r.kept_because


def test_the_shell_quotes_every_path():
    r = record.removal("/srv/x y", ["/srv/x y"], [])
    assert "rm -rf '/srv/x y'" in record.removal_command(r)
