"""An app on real sockets: uvicorn with app.server's configuration and listeners (exactly what `python -m app`
runs), in a thread of the test process, for the tests that need real connections (test_server, test_page,
test_bad_input)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from app.server import DrainingServer, bind_sockets, server_config
from app.settings import Settings


@contextmanager
def serving(app: FastAPI, settings: Settings) -> Iterator[DrainingServer]:
    """`app` served on settings.port (and settings.ops_port) until the block ends; yields once it listens (the
    lifespan has started; the model may still be loading: fake_service.wait_ready)."""
    config = server_config(app, settings)
    server = DrainingServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": bind_sockets(config, settings)}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(15)
