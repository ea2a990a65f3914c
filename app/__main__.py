"""Start the Mental-R1 assessment service.

    python -m app                              # embedded default model on 127.0.0.1:8000
    python -m app --model runs/mental-r1 --host 0.0.0.0 --port 8000 --kv-cache-gib 2
    bash scripts/serve.sh [same flags]         # sets up the venv and model first

Every setting (app/settings.py) is a flag and has an environment twin with the MENTAL_R1_ prefix (e.g.
--kv-cache-gib and MENTAL_R1_KV_CACHE_GIB); flags win. `python -m app --help` lists them.
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

from pydantic_settings import CliApp, CliSettingsSource

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


def parse_settings(argv: list[str] | None = None) -> Settings:
    """Settings from flags, then MENTAL_R1_* environment variables, then defaults: every Settings field is a
    flag (pydantic-settings' CLI source, kebab-case: --kv-cache-gib); `--help` lists them with their variables."""
    parser = argparse.ArgumentParser(prog="python -m app", description=(
        "Mental-R1 assessment service. Every flag has an environment twin (MENTAL_R1_...); flags win."))
    source = CliSettingsSource(Settings, root_parser=parser, cli_kebab_case=True, cli_hide_none_type=True,
                               cli_show_env_vars=True)
    return CliApp.run(Settings, cli_args=argv, cli_settings_source=source)


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
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
