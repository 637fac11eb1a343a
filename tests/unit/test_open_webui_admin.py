"""Open WebUI's admin from the operator's secret: sign-up closed, the password read from a file
on the control machine and refused - naming the file, never showing it - when it cannot be used;
images too old to make their admin from the environment refused in the bundle spec."""

from __future__ import annotations

import os

import pytest

from airnode import config, steps
from airnode.bundle import spec as bundlespec
from airnode.serving import webui
from airnode.steps import node_defaults
from airnode.steps.preflight import cross_checks

ALL_DEFAULTS = node_defaults()

SECRET = "c0rrect-h0rse-battery"


@pytest.fixture
def on(tmp_path):
    f = tmp_path / "admin-password"
    f.write_text(SECRET + "\n")
    return {
        **ALL_DEFAULTS,
        "open_webui": True,
        "open_webui_admin_email": "admin@example.com",
        "open_webui_admin_password_file": str(f),
    }


def test_the_password_is_the_first_line_of_the_file(tmp_path):
    f = tmp_path / "pw"
    for text, want in (
        (SECRET, SECRET),
        (SECRET + "\n", SECRET),
        (SECRET + "\r\nrest\n", SECRET),
        ("päss wörd with spaces\n", "päss wörd with spaces"),
    ):
        f.write_text(text)
        assert webui.admin_password(str(f)) == want.encode()


@pytest.mark.parametrize(
    "content, why",
    [
        (b"", "first line (the password) is empty"),
        (b"\nzebra line\n", "first line (the password) is empty"),
        (b"quokka\tzebra\n", "control characters"),
        (b"\xff\xfe\n", "not UTF-8"),
        (b"x" * 73 + b"\n", "73 bytes; Open WebUI hashes with bcrypt, which takes at most 72"),
    ],
)
def test_a_password_open_webui_cannot_take_is_refused_without_showing_it(tmp_path, content, why):
    f = tmp_path / "pw"
    f.write_bytes(content)
    with pytest.raises(webui.SecretFileError) as e:
        webui.admin_password(str(f))
    assert why in str(e.value) and str(f) in str(e.value)
    assert "open_webui_admin_password_file" in str(e.value)
    for word in (b"zebra", b"quokka", b"x" * 10):
        if word in content:
            assert word.decode() not in str(e.value)


def test_72_bytes_is_the_most(tmp_path):
    f = tmp_path / "pw"
    f.write_bytes("é".encode() * 36)
    assert len(webui.admin_password(str(f))) == 72


def test_a_missing_or_unreadable_file_or_a_directory_is_named(tmp_path):
    with pytest.raises(webui.SecretFileError, match="No such file or directory"):
        webui.admin_password(str(tmp_path / "nope"))
    with pytest.raises(webui.SecretFileError, match="not a regular file"):
        webui.admin_password(str(tmp_path))
    if os.geteuid() != 0:  # root reads a mode-000 file anyway
        f = tmp_path / "locked"
        f.write_text(SECRET)
        f.chmod(0)
        with pytest.raises(webui.SecretFileError, match="Permission denied"):
            webui.admin_password(str(f))


def test_open_webui_on_needs_an_email_and_a_password_file(on):
    assert cross_checks(on) == []
    for missing in ("open_webui_admin_email", "open_webui_admin_password_file"):
        problems = cross_checks({**on, missing: ""})
        assert len(problems) == 1 and problems[0].startswith(f"open_webui = true needs {missing}")
    both = cross_checks({**on, "open_webui_admin_email": "", "open_webui_admin_password_file": ""})
    assert "needs open_webui_admin_email and open_webui_admin_password_file" in both[0]
    # off: nothing needed
    assert cross_checks({**on, "open_webui": False, "open_webui_admin_password_file": ""}) == []


def test_a_bad_password_file_is_a_preflight_problem_that_never_shows_the_password(on, tmp_path):
    f = tmp_path / "long"
    f.write_text(SECRET * 5)
    problems = cross_checks({**on, "open_webui_admin_password_file": str(f)})
    assert len(problems) == 1 and "bcrypt" in problems[0] and SECRET not in problems[0]


@pytest.mark.parametrize("email", ["admin@example.com", "ops.team+llm@lab.local", "root@node1"])
def test_email_addresses_are_allowed(email):
    steps.check({"open_webui_admin_email": email})


@pytest.mark.parametrize(
    "email",
    [
        "admin",
        "@example.com",
        "a@b@c",
        "admin@example.com\n",
        "a b@example.com",
        "admin@exa mple.com",
        "x" * 65 + "@a.b",
        "a@$(reboot)",
    ],
)
def test_what_is_not_an_email_address_is_refused(email):
    with pytest.raises(config.SettingError, match="open_webui_admin_email = .* an email address"):
        steps.check({"open_webui_admin_email": email})


BASE = {
    "k0s": {"version": "v1.34.1+k0s.0"},
    "containerd": {"version": "2.1.4", "runc_version": "1.3.3"},
    "kube_prometheus": {"version": "v0.18.0"},
    "model_server": {"image": "docker.io/library/debian:bookworm-slim"},
    "ollama": {"version": "v0.13.5"},
}


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/open-webui/open-webui:v0.6.40",
        "ghcr.io/open-webui/open-webui:0.6.5-cuda",
        "ghcr.io/open-webui/open-webui:v0.5",
    ],
)
def test_open_webui_older_than_v0_7_0_is_refused_in_the_spec(image):
    with pytest.raises(bundlespec.SpecError, match=r"only from v0\.7\.0 on"):
        bundlespec.parse({**BASE, "open_webui": {"image": image}})


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/open-webui/open-webui:v0.7.0",
        "ghcr.io/open-webui/open-webui:v0.7.2-ollama",
        "ghcr.io/open-webui/open-webui:1.0.0",
        "ghcr.io/open-webui/open-webui:main",
        "ghcr.io/open-webui/open-webui@sha256:" + "a" * 64,
    ],
)
def test_open_webui_from_v0_7_0_or_named_otherwise_is_accepted(image):
    s = bundlespec.parse({**BASE, "open_webui": {"image": image}})
    assert image in s.extra_images
