"""`mental-r1`: the service and batch assessments from the command line.

    mental-r1 serve [--model DIR] [--port 8000] ...                   # the service: same as `python -m app`
    mental-r1 assess posts.csv --tasks DR,t-sid --output out.jsonl     # every row of a file, model loaded here
    mental-r1 assess posts.jsonl --output out.jsonl --url http://127.0.0.1:8000   # ... or sent to a service
    python -m app.cli assess ...                                       # the same without the console script

`assess` runs each row through the path POST /assess takes (mental_r1/assessment.py), so every output line
holds the same object as an /assess response (app/batch.py describes the output, the resume and the summary).
In-process it loads the model like the service (mental_r1/loading.py; `--model`, default the embedded
Mental-R1-135M; the MENTAL_R1_* settings apply) into one vLLM engine kept busy with `--concurrency` rows at a
time; a row the API would refuse gets the API's error type and message. With `--url` the rows go to a running
service (API key from $MENTAL_R1_API_KEY); 503 and 429 are retried. Ctrl-C stops cleanly; the same command
then resumes where the output ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from app.batch import (
    BatchError,
    Row,
    check_resumable,
    count_rows,
    format_summary,
    load_done,
    read_rows,
    run_rows,
    summarize,
)
from app.errors import error_type, service_error
from app.protocol import AssessRequest
from mental_r1.assessment import assess_request, check_length
from mental_r1.errors import EngineDead, EngineRejected, InvalidText
from mental_r1.tasks import DEFAULT_TASK

COMMANDS = {"serve": "start the assessment service (the same as `python -m app`)",
            "assess": "assess every row of a CSV or JSONL file, writing JSON lines"}
RETRIES = 120  # 503/429 answers from a service, each after its Retry-After (≤ 30 s): up to an hour of waiting


def validation_message(e: ValidationError) -> str:
    """The message the API's 422 gives for the same invalid request (app/errors.py)."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in e.errors())


class InProcess:
    """The model in this process: the service's model load, Assessor and response path, without HTTP."""

    def __init__(self, args):
        from app.settings import Settings

        overrides = {"model": args.model, "kv_cache_gib": args.kv_cache_gib, "max_text_chars": args.max_text_chars}
        self.settings = Settings(env="development", max_num_seqs=args.concurrency,
                                 **{k: v for k, v in overrides.items() if v is not None})
        self.engine = self.model_screen = None

    async def start(self) -> dict:
        from mental_r1.loading import checkpoint_folder, load_assessor
        from mental_r1.safety import CrisisResources
        from mental_r1.screen.model import load_model_screen

        s = self.settings
        try:
            folder = await asyncio.to_thread(checkpoint_folder, s.model)
        except FileNotFoundError as e:
            raise BatchError(str(e)) from None
        self.resources = CrisisResources.from_file(s.crisis_resources_file)
        self.assessor = load_assessor(folder, s.engine_limits, name=s.model_name)
        self.engine, self.model = self.assessor.engine, self.assessor.model
        self.model_screen = load_model_screen(self.model.name, self.model.version, s.screen_thresholds_file)
        return self.model.model_dump()

    async def assess(self, row: Row, request: dict) -> dict:
        try:
            body = AssessRequest(text=row.text, **request)
            check_length(body.text, self.settings.max_text_chars)
            response = await assess_request(
                self.assessor, body.text, body.task_ids, body.generation_options(), model=self.model,
                resources=self.resources, locale=body.locale, model_screen=self.model_screen)
        except ValidationError as e:
            return {"error": {"type": "invalid_request", "message": validation_message(e)}}
        except EngineDead:
            raise BatchError("the inference engine died; rerun the same command to resume") from None
        except (InvalidText, EngineRejected) as e:  # this row only, answered as POST /assess answers it
            error = service_error(e)
            return {"error": {"type": error_type(error.status), "message": error.message}}
        return response.model_dump(mode="json")

    async def close(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()


class Remote:
    """A running service: POST /assess per row; its answer (or error envelope) is the row's result."""

    def __init__(self, args, transport=None):
        import httpx

        key = os.environ.get("MENTAL_R1_API_KEY")
        self.client = httpx.AsyncClient(base_url=args.url, timeout=httpx.Timeout(900, connect=10),
                                        headers={"Authorization": f"Bearer {key}"} if key else {},
                                        limits=httpx.Limits(max_connections=args.concurrency), transport=transport)

    async def _call(self, method: str, path: str, **kw):
        import httpx

        for _ in range(RETRIES):
            try:
                r = await self.client.request(method, path, **kw)
            except httpx.TransportError as e:
                raise BatchError(f"cannot reach {self.client.base_url} ({type(e).__name__}); is the service "
                                 "running? Rerun the same command to resume") from None
            if r.status_code in (401, 403):
                raise BatchError(f"{self.client.base_url} refused the request ({_message(r)}); set "
                                 "MENTAL_R1_API_KEY to a valid key")
            if r.status_code not in (429, 503):
                return r
            await asyncio.sleep(_retry_after(r))
        raise BatchError(f"{self.client.base_url} kept answering {r.status_code} ({_message(r)}); rerun to resume")

    async def start(self) -> dict:
        self.known_tasks = {t["id"] for t in (await self._call("GET", "/tasks")).json()}
        return (await self._call("GET", "/readyz")).json()["model"]

    async def assess(self, row: Row, request: dict) -> dict:
        r = await self._call("POST", "/assess", json={"text": row.text, **request})
        if r.status_code == 200:
            return r.json()
        return {"error": {"type": _envelope(r).get("type", "error"), "message": _message(r)}}

    async def close(self) -> None:
        await self.client.aclose()


def _retry_after(r) -> float:
    """Retry-After in seconds (≤ 30; 5 when absent or an HTTP date)."""
    try:
        return min(max(float(r.headers.get("retry-after", "5")), 0.0), 30.0)
    except ValueError:
        return 5.0


def _envelope(r) -> dict:
    try:
        return r.json()["error"]
    except (ValueError, KeyError, TypeError):
        return {}


def _message(r) -> str:
    return _envelope(r).get("message") or f"HTTP {r.status_code}"


def assess_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mental-r1 assess", formatter_class=argparse.RawDescriptionHelpFormatter,
                                 description="Assess every row of a CSV or JSONL file, writing JSON lines.\n\n"
                                 + __doc__.split("\n\n")[2])
    ap.add_argument("input", type=Path, help="a .csv file with a header row or a .jsonl file")
    ap.add_argument("--output", "-o", type=Path, required=True, help="JSON lines; resumed if it exists")
    ap.add_argument("--tasks", default=DEFAULT_TASK, help="comma-separated task ids (GET /tasks), or dataset ids "
                    f"for all of their tasks (Irf = both Irf tasks); default {DEFAULT_TASK}")
    ap.add_argument("--text-column", default="text", help="the column (or JSON field) holding the text")
    ap.add_argument("--id-column", default="id", help="carried into the output; default: the row number")
    ap.add_argument("--include-text", action="store_true", help="copy each row's text into its output line")
    ap.add_argument("--locale", default=None, help="for crisis resources, e.g. en-US, en-GB")
    ap.add_argument("--max-tokens", type=int, default=384, help="reasoning budget per task")
    ap.add_argument("--concurrency", type=int, default=32, help="rows in flight (in-process: engine sequences too)")
    ap.add_argument("--url", default=None, help="a running service to send the rows to, e.g. http://127.0.0.1:8000")
    local = ap.add_argument_group("in-process (without --url; MENTAL_R1_* settings apply too)")
    local.add_argument("--model", default=None, help="checkpoint folder; default: the embedded Mental-R1-135M")
    local.add_argument("--kv-cache-gib", type=float, default=None, help="KV-cache memory (default 1)")
    local.add_argument("--max-text-chars", type=int, default=None, help="longer texts get an error line (default 4000)")
    return ap


def request_fields(args) -> tuple[list[str], dict]:
    """The task list and the per-row request fields, checked once with the API's own model. Dataset ids are
    expanded here (`Irf` → its two tasks), so the rows name the same tasks as the output and its resume."""
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    options = {"max_tokens": args.max_tokens, **({"locale": args.locale} if args.locale else {})}
    try:
        tasks = AssessRequest(text="check", tasks=names, **options).task_ids
    except ValidationError as e:
        raise BatchError(f"invalid options: {validation_message(e)}") from None
    return tasks, {"tasks": tasks, **options}


async def run_assess(args, backend: InProcess | Remote | None = None) -> dict:
    """The whole command; returns the summary of the output file. `backend` is built from `args` unless given."""
    from tqdm import tqdm

    tasks, request = request_fields(args)
    if args.concurrency < 1:
        raise BatchError("--concurrency must be at least 1")
    if args.output.resolve() == args.input.resolve():
        raise BatchError("--output must not be the input file")
    total = count_rows(args.input, args.text_column, args.id_column)  # reads the whole input once: fails early
    backend = backend or (Remote(args) if args.url else InProcess(args))
    try:
        model = await backend.start()
        if args.url and (unknown := [t for t in tasks if t not in backend.known_tasks]):
            raise BatchError(f"the service does not know task(s) {unknown}; it knows {sorted(backend.known_tasks)}")
        done = load_done(args.output)
        check_resumable(args.output, done, tasks, model)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with args.output.open("a", encoding="utf-8") as out, \
                tqdm(total=total, initial=min(len(done), total), unit="row", desc="assessing", dynamic_ncols=True) as bar:
            await run_rows(read_rows(args.input, args.text_column, args.id_column),
                           lambda row: backend.assess(row, request), out, done, concurrency=args.concurrency,
                           include_text=args.include_text, on_line=lambda _line: bar.update())
    finally:
        await backend.close()
    return summarize(load_done(args.output).values())


def assess_main(argv: list[str]) -> None:
    args = assess_parser().parse_args(argv)
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # stdout holds the summary only
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # → finally blocks: the engine is shut down
    try:
        summary = asyncio.run(run_assess(args))
    except BatchError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit(f"\ninterrupted; {args.output} keeps every finished row: run the same command to resume")
    print(format_summary(summary))
    print(f"wrote {args.output}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        usage = "usage: mental-r1 {serve,assess} ...\n\n" + "\n".join(f"  {c:8}{h}" for c, h in COMMANDS.items())
        if argv and argv[0] not in ("-h", "--help"):
            sys.exit(f"mental-r1: unknown command {argv[0]!r}\n{usage}")
        print(usage + "\n\n`mental-r1 COMMAND --help` describes a command's options.")
        return
    if argv[0] == "serve":
        from app.__main__ import main as serve

        serve(argv[1:])
    else:
        assess_main(argv[1:])


if __name__ == "__main__":
    main()
