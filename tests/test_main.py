"""`python -m backend` options and their environment variables."""

from __future__ import annotations

import pytest

from backend.__main__ import parse_args


def test_defaults(monkeypatch):
    for name in ("BACKEND_HOST", "BACKEND_PORT", "BACKEND_SIMULATE"):
        monkeypatch.delenv(name, raising=False)
    config = parse_args([])
    assert (config.host, config.port, config.simulate) == ("127.0.0.1", 8080, True)


def test_environment_then_flags(monkeypatch):
    monkeypatch.setenv("BACKEND_HOST", "0.0.0.0")
    monkeypatch.setenv("BACKEND_PORT", "9000")
    monkeypatch.setenv("BACKEND_SIMULATE", "false")
    config = parse_args([])
    assert (config.host, config.port, config.simulate) == ("0.0.0.0", 9000, False)
    config = parse_args(["--port", "9001", "--simulate", "--host", "::1"])
    assert (config.host, config.port, config.simulate) == ("::1", 9001, True)
    assert parse_args(["--no-simulate"]).simulate is False


def test_bad_environment_value_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("BACKEND_SIMULATE", "maybe")
    with pytest.raises(SystemExit, match="BACKEND_SIMULATE"):
        parse_args([])
