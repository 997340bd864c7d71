"""The suite's hermetic guard: offline switches set, non-loopback connections refused at once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import HERMETIC_ENV, NetworkRefused


def test_offline_and_no_telemetry_switches_reach_the_process_and_subprocesses():
    for key, value in HERMETIC_ENV.items():
        assert os.environ[key] == value
    keys = sorted(HERMETIC_ENV)
    code = f"import os, json; print(json.dumps({{k: os.environ.get(k) for k in {keys!r}}}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert json.loads(out) == HERMETIC_ENV
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE and constants.HF_HUB_DISABLE_TELEMETRY


@pytest.mark.parametrize("address", [("93.184.216.34", 443), ("2606:4700::1111", 443, 0, 0)])
def test_non_loopback_connections_fail_at_once(address):
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    started = time.monotonic()
    with socket.socket(family, socket.SOCK_STREAM) as sock, pytest.raises(NetworkRefused):
        sock.connect(address)
    with pytest.raises(NetworkRefused):
        socket.create_connection(("example.com", 443), timeout=30)
    assert time.monotonic() - started < 1.0


def test_loopback_keeps_working():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        accepted = threading.Thread(target=lambda: server.accept()[0].close())
        accepted.start()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        accepted.join(5)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket() as client:
            client.connect(("localhost", server.getsockname()[1]))
