"""Shared fixtures: local artifacts that stand in for hub downloads (no network in CI).

The suite is hermetic: the offline and no-telemetry switches below are set before anything imports
huggingface_hub, transformers, datasets, trl or inspect_ai (this module is imported first, and the
subprocesses the tests start inherit ``os.environ``), and an autouse fixture refuses every
non-loopback socket connection, so a test that reaches for the network fails at once.
"""

from __future__ import annotations

import os

HERMETIC_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "WANDB_MODE": "disabled",
    "WANDB_DISABLED": "true",
    "DISABLE_MLFLOW_INTEGRATION": "TRUE",
    "GRADIO_ANALYTICS_ENABLED": "False",
}
os.environ.update(HERMETIC_ENV)
os.environ.pop("INSPECT_TELEMETRY", None)  # an opt-in hook module that would send eval events

import ipaddress  # noqa: E402
import socket  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from af_tasks.engine.tiny import build_tiny_llama  # noqa: E402

EMBEDDED_MODEL = Path("models/smollm2-135m-instruct")


class NetworkRefused(OSError):
    """A test tried to reach a non-loopback address: the suite runs offline."""


def is_local(address) -> bool:
    """Loopback hosts and Unix-domain socket paths are local; everything else is the network."""
    if isinstance(address, (str, bytes)) and not isinstance(address, tuple):
        return True  # AF_UNIX path
    host = address[0] if isinstance(address, tuple) and address else address
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost would need DNS: the network


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_create_connection = socket.create_connection


def _refuse(address) -> None:
    raise NetworkRefused(f"network access refused in tests: {address!r}")


def _guarded_connect(self, address):
    if self.family != socket.AF_UNIX and not is_local(address):
        _refuse(address)
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family != socket.AF_UNIX and not is_local(address):
        _refuse(address)
    return _connect_ex(self, address)


def _guarded_create_connection(address, *args, **kwargs):
    if not is_local(address):
        _refuse(address)
    return _create_connection(address, *args, **kwargs)


@pytest.fixture(autouse=True, scope="session")
def refuse_network():
    """Every non-loopback ``connect`` raises at once (loopback, e.g. a local server, keeps working)."""
    patches = {
        (socket.socket, "connect"): _guarded_connect,
        (socket.socket, "connect_ex"): _guarded_connect_ex,
        (socket, "create_connection"): _guarded_create_connection,
    }
    saved = {key: getattr(*key) for key in patches}
    for (owner, name), replacement in patches.items():
        setattr(owner, name, replacement)
    yield
    for (owner, name), original in saved.items():
        setattr(owner, name, original)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    if not (EMBEDDED_MODEL / "af_model.json").is_file():
        pytest.fail(f"{EMBEDDED_MODEL} is not prepared; run `make model` (make test does it)")
    return EMBEDDED_MODEL


# Honest markers: a test that builds, loads or runs a transformers model carries `model`, one that
# trains something (LoRA, SAE, an organism, the validation's probes) carries `train`, one that runs a
# command in a subprocess (`af`, `inspect`, pip, a fresh interpreter: seconds of imports each) carries
# `cli`, and all three carry `slow`, so `pytest -m 'not slow'` runs none of them. Marked here from the fixtures a test uses, so a new test on
# a model fixture is marked without anyone remembering to; tests that build a model inline are marked
# in their file.
MODEL_FIXTURES = frozenset(
    {"tiny_llama_dir", "embedded_model_dir", "gemma_dir", "reader", "smollm2_engine", "tiny_organism"}
)
TRAIN_FIXTURES = frozenset(
    {"organism_dir", "ddp_run", "trained", "artifacts", "always_attacks", "experiment"}
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & TRAIN_FIXTURES:
            item.add_marker(pytest.mark.train)
        if fixtures & MODEL_FIXTURES:
            item.add_marker(pytest.mark.model)
        if any(item.get_closest_marker(name) for name in ("train", "model", "cli")):
            item.add_marker(pytest.mark.slow)
