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
