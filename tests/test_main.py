"""`python -m backend` options and their environment variables."""

from __future__ import annotations

import json

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
    monkeypatch.setenv("BACKEND_INSECURE_NO_AUTH", "true")  # 0.0.0.0 without tokens: said on purpose
    config = parse_args([])
    assert (config.host, config.port, config.simulate) == ("0.0.0.0", 9000, False)
    config = parse_args(["--port", "9001", "--simulate", "--host", "::1"])
    assert (config.host, config.port, config.simulate) == ("::1", 9001, True)
    assert parse_args(["--no-simulate"]).simulate is False


def test_bad_environment_value_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("BACKEND_SIMULATE", "maybe")
    with pytest.raises(SystemExit) as exited:
        parse_args([])
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("python -m backend: error: env BACKEND_SIMULATE: simulate: ") and "'maybe'" in line


def test_a_public_address_without_authentication_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--host", "0.0.0.0"])
    assert "--tokens-file" in capsys.readouterr().err
    assert parse_args(["--host", "0.0.0.0", "--insecure-no-auth"]).tokens is None
    for loopback in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert parse_args(["--host", loopback]).tokens is None


def test_tokens_file_turns_authentication_on(tmp_path, capsys):
    good = tmp_path / "tokens.json"
    good.write_text(json.dumps({"tokens": [{"token": "t" * 20, "id": "alice", "scopes": ["read"]}]}))
    config = parse_args(["--host", "0.0.0.0", "--tokens-file", str(good)])
    assert config.tokens is not None and len(config.tokens) == 1
    for bad in (
        "not json",
        json.dumps({"tokens": []}),
        json.dumps({"tokens": [{"token": "short", "id": "a"}]}),
        json.dumps({"tokens": [{"token": "t" * 20, "id": "a", "scopes": ["root"]}]}),
        json.dumps({"tokens": [{"token": "t" * 19 + "/", "id": "a"}]}),
    ):
        path = tmp_path / "bad.json"
        path.write_text(bad)
        with pytest.raises(SystemExit):
            parse_args(["--tokens-file", str(path)])
        assert str(path) in capsys.readouterr().err


def test_allowed_origins_and_hosts_are_loopback_on_the_port_plus_configured_ones():
    config = parse_args(
        ["--port", "9005", "--allow-origin", "https://app.example.com/", "--allow-host", "App.Example.com"]
    )
    settings = config.realtime
    assert settings.allowed_origins is not None and settings.allowed_hosts is not None
    assert {
        "http://127.0.0.1:9005",
        "http://localhost:9005",
        "https://app.example.com",
    } <= settings.allowed_origins
    assert "http://evil.example:9005" not in settings.allowed_origins
    assert {"127.0.0.1:9005", "localhost:9005", "[::1]:9005", "app.example.com"} <= settings.allowed_hosts


def test_database_selects_the_postgres_store(monkeypatch, capsys):
    monkeypatch.delenv("BACKEND_DATABASE", raising=False)
    assert parse_args([]).database is None  # in memory
    url = "postgresql://postgres@127.0.0.1:5432/realtime"
    assert parse_args(["--database", url]).database == url
    monkeypatch.setenv("BACKEND_DATABASE", url)
    assert parse_args([]).database == url
    with pytest.raises(SystemExit):
        parse_args(["--database", "mysql://db/x"])
    assert "--database" in capsys.readouterr().err
