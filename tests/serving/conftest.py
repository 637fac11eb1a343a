import socket
import subprocess
import sys
from pathlib import Path

import pytest

from airnode.serving.health import Client


@pytest.fixture(scope="session")
def llama_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("llama_server.py")), str(port), "smollm2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        Client(url).wait_ready(120)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
