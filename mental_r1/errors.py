"""Why the core did not assess a request: plain exceptions, mapped to HTTP answers by app/errors.py and to
output lines by the batch command (app/cli.py).

Every message is safe to show the caller: none quotes the text of a post (vLLM's own messages may, so
they are never passed on for a rejected request).
"""

from __future__ import annotations


class AssessmentError(Exception):
    """The request was not assessed; `str(e)` says why and, where the caller can, how to fix it."""


class InvalidText(AssessmentError, ValueError):
    """The text cannot be assessed as it is (too long in characters or in tokens): the caller must change it."""


class EngineRejected(AssessmentError, ValueError):
    """The engine's own input validation refused a request (vLLM's client errors)."""


class EngineBusy(AssessmentError):
    """The engine's admission control refused a request for now (vLLM's queue limits): retry later.
    `http_status` is the status vLLM attaches to it."""

    def __init__(self, message: str, http_status: int):
        super().__init__(message)
        self.http_status = http_status


class EngineDead(AssessmentError):
    """The engine has died: no request will succeed until the process is restarted."""


def engine_failure(exc: BaseException) -> AssessmentError | None:
    """The domain exception a vLLM exception stands for, or None for anything else (a bug: let it propagate)."""
    from vllm.exceptions import GracefulHTTPError, VLLMClientError
    from vllm.v1.engine.exceptions import EngineDeadError

    if isinstance(exc, EngineDeadError):
        return EngineDead("the inference engine has failed; the service needs a restart")
    if isinstance(exc, GracefulHTTPError):
        return EngineBusy(exc.message, int(exc.http_status))
    if isinstance(exc, VLLMClientError):
        return EngineRejected(f"the inference engine rejected the request ({type(exc).__name__}); "
                              "shorten the text or lower max_tokens")
    return None
