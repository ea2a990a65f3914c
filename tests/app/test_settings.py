import hashlib

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_production_requires_api_keys(monkeypatch):
    monkeypatch.delenv("MENTAL_R1_API_KEY_HASHES", raising=False)
    with pytest.raises(ValidationError, match="requires MENTAL_R1_API_KEY_HASHES"):
        Settings(env="production")
    h = hashlib.sha256(b"k").hexdigest()
    assert Settings(env="production", api_key_hashes=f" {h.upper()} ,").key_hashes == [h]


def test_bad_hash_is_refused_with_the_fix():
    with pytest.raises(ValidationError, match="sha256sum"):
        Settings(api_key_hashes="plaintext-key")


def test_env_prefix(monkeypatch):
    monkeypatch.setenv("MENTAL_R1_PORT", "9001")
    monkeypatch.setenv("MENTAL_R1_KV_CACHE_GIB", "2.5")
    s = Settings()
    assert s.port == 9001 and s.kv_cache_gib == 2.5 and s.env == "development"


def test_flags_win_over_the_environment_and_every_setting_is_a_flag(monkeypatch, capsys):
    from app.__main__ import parse_settings

    monkeypatch.setenv("MENTAL_R1_PORT", "9001")
    monkeypatch.setenv("MENTAL_R1_HOST", "0.0.0.0")
    s = parse_settings(["--port", "9002", "--kv-cache-gib", "2", "--max-text-chars", "100", "--model", "/m"])
    assert (s.port, s.host, s.kv_cache_gib, s.max_text_chars, str(s.model)) == (9002, "0.0.0.0", 2.0, 100, "/m")
    assert parse_settings([]).port == 9001
    with pytest.raises(SystemExit) as e:
        parse_settings(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith("usage: python -m app")
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')} " in out and f"MENTAL_R1_{name.upper()}" in out
    with pytest.raises(SystemExit) as e:
        parse_settings(["--workers", "2"])
    assert e.value.code == 2 and "unrecognized arguments: --workers" in capsys.readouterr().err
    with pytest.raises(ValidationError, match="ops_port must differ"):
        parse_settings(["--port", "8000", "--ops-port", "8000"])


def test_ops_port_must_differ_from_the_api_port():
    with pytest.raises(ValidationError, match="ops_port must differ"):
        Settings(port=8000, ops_port=8000)
    assert Settings(port=8000, ops_port=9090).ops_host == "127.0.0.1"  # loopback unless told otherwise


def test_an_open_api_on_the_network_is_recognised(monkeypatch):
    monkeypatch.delenv("MENTAL_R1_API_KEY_HASHES", raising=False)
    assert Settings(host="0.0.0.0").open_to_the_network
    assert not Settings(host="127.0.0.1").open_to_the_network
    assert not Settings(host="0.0.0.0", api_key_hashes=hashlib.sha256(b"k").hexdigest()).open_to_the_network


def test_connection_limits_reach_uvicorn():
    """`python -m app` builds its server with app.server.server_config: the settings land in uvicorn's config."""
    from app.server import BoundedH11Protocol, server_config

    s = Settings(max_connections=7, max_header_bytes=4096, keep_alive_s=3, header_timeout_s=2.5)
    config = server_config(object(), s)
    assert config.limit_concurrency == 8  # uvicorn counts the connection being refused too
    assert config.h11_max_incomplete_event_size == 4096 and config.timeout_keep_alive == 3
    assert issubclass(config.http, BoundedH11Protocol) and config.http.header_timeout_s == 2.5


@pytest.mark.parametrize(("drain", "uvicorn_timeout"), [(0, 0), (2.5, 2.5), (30, 30)])
def test_the_drain_timeout_reaches_uvicorn_unrounded_and_0_does_not_wait_forever(drain, uvicorn_timeout):
    from app.server import server_config

    # uvicorn's timeout_graceful_shutdown=None waits for in-flight requests forever
    assert server_config(object(), Settings(drain_timeout_s=drain)).timeout_graceful_shutdown == uvicorn_timeout
