"""Rendering of the files airnode writes on a node, from ``templates/``. Pure: no pyinfra.

Steps render here and upload the text, so every generated file can be unit-tested as text.
Nothing rendered may contain a timestamp: the same inputs always give the same bytes.
"""

from __future__ import annotations

from functools import cache

import jinja2

from airnode.paths import TEMPLATES


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(name: str, **values) -> str:
    return _env().get_template(name).render(**values)
