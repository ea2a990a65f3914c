"""Service settings: environment variables with the MENTAL_R1_ prefix (or `python -m app --flag`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mental_r1.engine import EngineLimits
from mental_r1.screen.model import THRESHOLDS_FILE


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MENTAL_R1_", extra="ignore")

    env: Literal["development", "production"] = "development"
    model: Path | None = Field(None, description="Checkpoint folder; default: the embedded default model.")
    model_name: str | None = Field(None, description="Name reported in responses; default: the folder name.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    ops_host: str = Field("127.0.0.1", description="Bind address of the ops listener (see ops_port).")
    ops_port: int | None = Field(None, ge=1, le=65535, description=(
        "Port of a second listener that alone serves /metrics, /docs and /openapi.json. Unset: they are on "
        "the API port in development and not served at all in production."))

    # engine limits
    max_model_len: int = Field(2048, ge=256)
    kv_cache_gib: float = Field(1.0, gt=0, description="KV-cache memory; vLLM otherwise takes most of RAM.")
    max_num_seqs: int = Field(32, ge=1, description="Sequences decoded concurrently by the engine.")
    max_queued_requests: int = Field(256, ge=1, description=(
        "Assessment tasks in flight before 503 (a request for n tasks takes n)."))
    enforce_eager: bool = True
    dtype: Literal["auto", "bfloat16", "float32"] = Field("auto", description=(
        "Weights and KV cache. auto: bfloat16 where the machine computes it natively (GPU, AVX512-BF16 or AMX "
        "CPUs), else float32 (AVX2-only CPUs, where bf16 decodes 3.8x slower)."))

    # requests
    request_timeout_s: float = Field(120.0, gt=0)
    drain_timeout_s: float = Field(30.0, ge=0)
    max_text_chars: int = Field(4000, ge=1)
    max_body_bytes: int = Field(65536, ge=1024)
    rate_limit_per_minute: int = Field(0, ge=0, description=(
        "Assessment tasks per minute per API key (one shared budget without keys); 429 beyond. 0: no limit."))

    # connections (uvicorn/h11, app/server.py)
    max_connections: int = Field(512, ge=1, description="Open connections served at once; 503 beyond.")
    max_header_bytes: int = Field(16384, ge=1024, description="Request line + headers; 431 (or 400) beyond.")
    header_timeout_s: float = Field(10.0, gt=0, description=(
        "Time for a request's head after connecting or after the previous response; then the connection closes."))
    keep_alive_s: int = Field(5, ge=1, description="Idle keep-alive connections close after this.")
    body_timeout_s: float = Field(30.0, gt=0, description="Time to receive the whole request body; 408 beyond.")

    # security and safety
    api_key_hashes: str = Field("", description="Comma-separated SHA-256 hex digests of accepted API keys.")
    crisis_resources_file: Path | None = None
    screen_thresholds_file: Path = Field(THRESHOLDS_FILE, description=(
        "Crisis-screen thresholds per model (training/screen_eval.py --write-thresholds); default: the shipped file."))

    @field_validator("api_key_hashes")
    @classmethod
    def _hashes_are_sha256(cls, v: str) -> str:
        for h in cls.split(v):
            if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
                raise ValueError("api_key_hashes must be SHA-256 hex digests (64 lowercase hex chars); "
                                 "make one with: printf %s \"$KEY\" | sha256sum")
        return v

    @model_validator(mode="after")
    def _production_needs_keys(self) -> Settings:
        if self.env == "production" and not self.key_hashes:
            raise ValueError("MENTAL_R1_ENV=production requires MENTAL_R1_API_KEY_HASHES "
                             "(an open assessment API is only allowed in development: for a local trial set "
                             "MENTAL_R1_ENV=development and keep the port on 127.0.0.1)")
        return self

    @model_validator(mode="after")
    def _ops_port_is_separate(self) -> Settings:
        if self.ops_port is not None and self.ops_port == self.port:
            raise ValueError("ops_port must differ from port (the ops endpoints are kept off the API port)")
        return self

    @staticmethod
    def split(v: str) -> list[str]:
        return [h.strip().lower() for h in v.split(",") if h.strip()]

    @property
    def open_to_the_network(self) -> bool:
        """No API keys on a non-loopback bind address: anyone who reaches the port can use the API."""
        return not self.key_hashes and self.host not in ("127.0.0.1", "localhost", "::1")

    @property
    def key_hashes(self) -> list[str]:
        return self.split(self.api_key_hashes)

    @property
    def engine_limits(self) -> EngineLimits:
        return EngineLimits(max_model_len=self.max_model_len, kv_cache_gib=self.kv_cache_gib,
                            max_num_seqs=self.max_num_seqs, enforce_eager=self.enforce_eager, dtype=self.dtype)
