import pytest

from tests.httpserver import FixtureServer
from tests.upstream import Upstream


@pytest.fixture
def upstream():
    with FixtureServer() as server:
        yield Upstream(server)
