"""Open WebUI's admin: sign-up closed, the admin account made by Open WebUI itself at its first
start from an email and a password the operator provides. Pure: imports nothing from pyinfra.

Upstream (open-webui/open-webui, v0.7.0 and later; v0.6.x has none of it):
- ``backend/open_webui/env.py``: ``WEBUI_ADMIN_EMAIL``, ``WEBUI_ADMIN_PASSWORD``,
  ``WEBUI_ADMIN_NAME`` ("Admin") read from the environment;
- ``backend/open_webui/main.py`` ``lifespan``: when both are set, ``create_admin_user`` runs at
  every start and makes the account only while the database has no user at all; when it made
  one it sets ``ui.enable_signup`` to false. So the password is read once, on an empty
  database: changing the file later changes nothing (change it in Open WebUI instead).
- ``ENABLE_SIGNUP=false`` closes the sign-up form (``routers/auths.py`` ``signup`` answers 403),
  the first one included.
Passwords are hashed with bcrypt, which takes at most 72 bytes.
"""

from __future__ import annotations

import os
import re
import stat

# The Kubernetes Secret holding the password (key ``password``): made on the node from the
# operator's file, once, never printed and never on a command line.
ADMIN_SECRET = "open-webui-admin"
ADMIN_SECRET_KEY = "password"
# Where the file is uploaded for ``kubectl create secret --from-file`` and removed right after:
# a root-only directory on the node's tmpfs.
UPLOAD_DIR = "/run/airnode"
UPLOAD_PATH = f"{UPLOAD_DIR}/open-webui-admin-password"
EMAIL = r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63}){0,8}"
BCRYPT_MAX_BYTES = 72
FIRST_VERSION = (0, 7, 0)


class SecretFileError(ValueError):
    """The admin password file cannot be used; the message never holds its content."""


def admin_password(path: str) -> bytes:
    """The password: the first line of the file at ``path`` on the control machine, without
    its line end. Refused, naming the file but never its content: missing, not a regular file,
    unreadable, empty first line, control characters, more than bcrypt's 72 bytes."""
    key = "open_webui_admin_password_file"
    try:
        st = os.stat(path)
    except OSError as e:
        raise SecretFileError(f"{key} = {path!r}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretFileError(f"{key} = {path!r}: not a regular file")
    try:
        with open(path, "rb") as f:
            first = f.read(4096).split(b"\n", 1)[0].removesuffix(b"\r")
    except OSError as e:
        raise SecretFileError(f"{key} = {path!r}: {e.strerror}") from None
    if not first:
        raise SecretFileError(f"{key} = {path!r}: its first line (the password) is empty")
    try:
        text = first.decode()
    except UnicodeDecodeError:
        raise SecretFileError(f"{key} = {path!r}: the password is not UTF-8 text") from None
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise SecretFileError(f"{key} = {path!r}: the password holds control characters")
    if len(first) > BCRYPT_MAX_BYTES:
        raise SecretFileError(
            f"{key} = {path!r}: the password is {len(first)} bytes; Open "
            f"WebUI hashes with bcrypt, which takes at most "
            f"{BCRYPT_MAX_BYTES}"
        )
    return first


def image_version(image: str) -> tuple[int, ...] | None:
    """The version an image's tag names (ghcr.io/open-webui/open-webui:v0.7.2 -> (0, 7, 2)),
    or None when the tag is not a version (main, a digest)."""
    tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    m = re.fullmatch(r"v?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?(?:[-.+].*)?", tag)
    if not m:
        return None
    return tuple(int(g or 0) for g in m.groups())


def image_problem(image: str) -> str | None:
    """Why an Open WebUI image cannot make its admin from the environment, or None."""
    v = image_version(image)
    if v is not None and v < FIRST_VERSION:
        return (
            f"open_webui.image = {image!r}: Open WebUI makes its admin from "
            "WEBUI_ADMIN_EMAIL and WEBUI_ADMIN_PASSWORD only from v0.7.0 on; with sign-up "
            "closed an older one has no way in. Use v0.7.0 or later"
        )
    return None
