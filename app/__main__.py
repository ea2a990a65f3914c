"""Start the Mental-R1 assessment service.

    python -m app                              # embedded default model on 127.0.0.1:8000
    python -m app --model runs/mental-r1 --host 0.0.0.0 --port 8000 --kv-cache-gib 2
    bash scripts/serve.sh [same flags]         # sets up the venv and model first

Every flag has an environment twin with the MENTAL_R1_ prefix (e.g. MENTAL_R1_MODEL); flags win.
One uvicorn worker per process: each worker would load its own engine. On SIGTERM the service fails
/readyz, stops accepting connections, lets in-flight requests finish for up to --drain-timeout-s, and
shuts the engine down.
"""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn

from app.settings import Settings

_FLAGS = ("model", "model_name", "host", "port", "max_model_len", "kv_cache_gib", "max_num_seqs",
          "max_queued_requests", "request_timeout_s", "drain_timeout_s", "max_text_chars", "env")


class DrainingServer(uvicorn.Server):
    """Marks the app as draining (→ /readyz 503, new /assess 503) the moment a shutdown signal arrives."""

    def handle_exit(self, sig, frame) -> None:
        app = self.config.loaded_app
        while app is not None and not hasattr(app, "state"):  # unwrap uvicorn's middleware
            app = getattr(app, "app", None)
        if app is not None:
            app.state.draining = True
        super().handle_exit(sig, frame)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app", description="Mental-R1 assessment service")
    for name in _FLAGS:
        field = Settings.model_fields[name]
        parser.add_argument("--" + name.replace("_", "-"), default=None, help=field.description)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = Settings(**overrides)

    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from app.main import create_app

    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port, workers=1,
                            timeout_graceful_shutdown=int(settings.drain_timeout_s) or None,
                            log_level="info")
    DrainingServer(config).run()


if __name__ == "__main__":
    main()
