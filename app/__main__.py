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
import signal
import sys
import time

from app.settings import Settings

_API_PID = "MENTAL_R1_API_PID"  # inherited by every engine process: how the watchdog finds them


def _start_engine_watchdog() -> None:
    """Fork a small watchdog that SIGKILLs this service's engine processes if the API process dies abruptly.

    vLLM's workers exit when their EngineCore dies, but EngineCore does not watch the API process: after a
    SIGKILL or OOM kill of the service, EngineCore and its worker ran on as orphans, spinning on CPU and
    holding the KV cache (tests/app/test_faults.py). The watchdog is forked before any engine, socket or
    thread exists; it finds the engine processes by the MENTAL_R1_API_PID they inherit (Linux /proc).
    """
    if not sys.platform.startswith("linux"):
        return
    api_pid = os.getpid()
    os.environ[_API_PID] = str(api_pid)
    if os.fork() != 0:
        return
    try:  # the watchdog
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C shuts the API down cleanly; check after it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while os.getppid() == api_pid:
            time.sleep(1.0)
        marker = f"{_API_PID}={api_pid}".encode()
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    with open(f"/proc/{entry}/environ", "rb") as f:
                        if marker in f.read().split(b"\0"):
                            os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass  # gone already, or not ours to read
    finally:
        os._exit(0)

_FLAGS = ("model", "model_name", "host", "port", "ops_host", "ops_port", "max_model_len", "kv_cache_gib",
          "max_num_seqs", "max_queued_requests", "request_timeout_s", "drain_timeout_s", "max_text_chars", "env")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app", description="Mental-R1 assessment service")
    for name in _FLAGS:
        field = Settings.model_fields[name]
        parser.add_argument("--" + name.replace("_", "-"), default=None, help=field.description)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = Settings(**overrides)

    _start_engine_watchdog()
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.open_to_the_network:
        logging.getLogger("app").warning(
            "no API keys and bound to %s: anyone who can reach port %d can use the API (development only; "
            "publish the port on 127.0.0.1 or set MENTAL_R1_API_KEY_HASHES)", settings.host, settings.port)

    from app.main import create_app
    from app.server import DrainingServer, bind_sockets, server_config

    config = server_config(create_app(settings), settings)
    DrainingServer(config).run(sockets=bind_sockets(config, settings))


if __name__ == "__main__":
    main()
