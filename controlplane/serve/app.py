"""The HTTP surface (Starlette): OIP v2 REST, OpenAI ``/v1/embeddings``, ``/metrics``, ``/openapi.json``.

Routes never let an exception become a 500 for bad input: ``protocol.BadRequest`` and tokenizer
failures are 4xx with an error body; a full queue is 503 with ``Retry-After``; only a failure inside
the model is counted as ``outcome="error"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controlplane import __version__
from controlplane.serve import protocol
from controlplane.serve.batcher import Batcher, QueueFull
from controlplane.serve.inference import Embedder, InferenceFailed, TextTooLong, TokenizationError, output_health
from controlplane.serve.loader import Fetched
from controlplane.serve.openapi import openapi_document
from controlplane.serve.options import ServeOptions
from controlplane.serving_metrics import ServerMetrics

log = logging.getLogger("ctl.serve")
RETRY_AFTER_S = "1"
JSON = "application/json"


class ServerState:
    """What the routes share: the served version, its metrics, and (once loaded) the embedder and batcher."""

    def __init__(
        self, fetched: Fetched, options: ServeOptions, load: Callable[[], Embedder], started: float | None = None
    ) -> None:
        self.name = fetched.version.name
        self.version = fetched.version.version
        self.options = options
        self.metrics = ServerMetrics(self.name, self.version, options.role)
        self.served = {self.name, fetched.version.ref, fetched.version.source_uri}
        self._load = load
        self.embedder: Embedder | None = None
        self.batcher: Batcher | None = None
        self.arriving = 0  # inference requests read or tokenized but not yet queued
        self.fatal: str | None = None  # why loading failed: the server exits 2 with this line
        self.on_fatal: Callable[[str], None] = lambda message: None
        self.started = time.perf_counter() if started is None else started  # perf_counter() at the command's start

    @property
    def ready(self) -> bool:
        return self.batcher is not None

    async def load(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.embedder = await loop.run_in_executor(None, self._load)
        except Exception as exc:  # InputError / InferenceFailed / onnxruntime: one line, exit 2
            self.fatal = " ".join(str(exc).split()) or type(exc).__name__
            self.on_fatal(self.fatal)
            return
        o = self.options
        self.batcher = Batcher(
            self.embedder.run, self.metrics, o.max_batch_tokens, o.max_wait_ms / 1000.0, o.max_queue_texts,
            lambda: self.arriving,
        )
        self.batcher.start()
        self.metrics.load_seconds.set(time.perf_counter() - self.started)
        log.warning("ready: %s:v%d (%s)", self.name, self.version, ",".join(self.embedder.encoder.session.get_providers()))


class Arrival:
    """Counts a request in ``state.arriving`` from its first byte until it is queued (or fails), so the
    batcher waits for requests on their way and never for nothing."""

    def __init__(self, state: ServerState) -> None:
        self._state: ServerState | None = state
        state.arriving += 1

    def done(self) -> None:
        if self._state is not None:
            self._state.arriving -= 1
            self._state = None


Responder = Callable[[Any, Arrival], Awaitable[Response]]


def oip_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def openai_error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise protocol.BadRequest(413, f"request body larger than {limit} bytes", "body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise protocol.BadRequest(413, f"request body larger than {limit} bytes", "body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(state: ServerState) -> Starlette:
    m = state.metrics

    def model_matches(request: Request) -> str | None:
        """None when the path names the served model (and version), else the 404 message."""
        name = request.path_params["name"]
        version = request.path_params.get("version")
        if name != state.name:
            return f"model {name!r} is not served here (serving {state.name!r})"
        if version is not None and version.removeprefix("v") != str(state.version):
            return f"version {version!r} of {name!r} is not served here (serving {state.version})"
        return None

    async def embed(texts: list[str], arrival: Arrival) -> tuple[Any, int]:
        """Embeddings and token count; raises BadRequest, QueueFull or InferenceFailed."""
        assert state.embedder is not None and state.batcher is not None
        try:
            tokenized = state.embedder.tokenize(texts)
        except TokenizationError as exc:
            m.tokenization_errors.inc()
            raise protocol.BadRequest(400, str(exc), "tokenization_error") from None
        except TextTooLong as exc:  # counted as bad_input by handle()
            raise protocol.BadRequest(400, str(exc), "text_too_long") from None
        if tokenized.truncated:
            m.truncations.inc(tokenized.truncated)
        for seq in tokenized.seqs:
            m.tokens.observe(len(seq))
        try:
            future = state.batcher.submit(tokenized.seqs)
        finally:
            arrival.done()
        vectors = await future
        health = output_health(vectors)
        for reason, count in health.items():
            if count:
                m.unhealthy[reason].inc(count)
        if health["non_finite"]:
            raise InferenceFailed("internal", f"the model produced {health['non_finite']} non-finite embedding(s)")
        return vectors, sum(len(s) for s in tokenized.seqs)

    async def handle(request: Request, respond: Responder, error: Callable[..., JSONResponse]) -> Response:
        """Count one inference request: parse and embed through ``respond``, map every failure to a status."""
        start = time.perf_counter()
        m.inflight.inc()
        outcome = "ok"
        arrival = Arrival(state)
        try:
            if not state.ready:
                outcome = "error"
                return error(503, "the model is still loading", "not_ready", {"Retry-After": RETRY_AFTER_S})
            body = await read_body(request, state.options.max_body_bytes)
            return await respond(protocol.parse_json(body), arrival)
        except protocol.BadRequest as exc:
            outcome = "invalid"
            m.errors["bad_input"].inc()
            return error(exc.status, exc.message, exc.code)
        except QueueFull as exc:
            outcome = "error"
            return error(503, f"overloaded: {exc}; retry later", "overloaded", {"Retry-After": RETRY_AFTER_S})
        except InferenceFailed as exc:
            outcome = "error"
            m.errors[exc.kind].inc()
            if exc.kind == "bad_input":
                outcome = "invalid"
                return error(400, str(exc), "bad_input")
            status = 503 if exc.kind == "out_of_memory" else 500
            headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else None
            return error(status, str(exc), exc.kind, headers)
        finally:
            arrival.done()
            m.inflight.dec()
            m.request(outcome, time.perf_counter() - start)

    def oip_err(status: int, message: str, code: str = "", headers: dict[str, str] | None = None) -> JSONResponse:
        return oip_error(status, message, headers)

    async def infer(request: Request) -> Response:
        async def respond(doc: Any, arrival: Arrival) -> Response:
            mismatch = model_matches(request)
            if mismatch:
                raise protocol.BadRequest(404, mismatch, "model_not_found")
            parsed = protocol.oip_request(doc, state.options.max_request_texts)
            vectors, _ = await embed(parsed.texts, arrival)
            return json_response(protocol.oip_response(state.name, state.version, parsed.request_id, vectors))

        return await handle(request, respond, oip_err)

    async def embeddings(request: Request) -> Response:
        async def respond(doc: Any, arrival: Arrival) -> Response:
            assert state.embedder is not None
            parsed = protocol.openai_request(doc, state.options.max_request_texts, state.served, state.embedder.dim)
            vectors, tokens = await embed(parsed.texts, arrival)
            return json_response(protocol.openai_response(state.name, vectors, tokens, parsed.base64))

        return await handle(request, respond, openai_error)

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def server_ready(request: Request) -> Response:
        status = 200 if state.ready else 503
        return JSONResponse({"ready": state.ready, "live": True}, status_code=status)

    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": "ctl-serve", "version": __version__, "extensions": []})

    def model_metadata_body() -> dict[str, Any]:
        dim = state.embedder.dim if state.embedder else -1
        return {
            "name": state.name,
            "versions": [str(state.version)],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": protocol.INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": protocol.OUTPUT_NAME, "datatype": "FP32", "shape": [-1, dim]}],
        }

    async def model_metadata(request: Request) -> Response:
        mismatch = model_matches(request)
        return oip_error(404, mismatch) if mismatch else JSONResponse(model_metadata_body())

    async def model_ready(request: Request) -> Response:
        mismatch = model_matches(request)
        if mismatch:
            return oip_error(404, mismatch)
        return JSONResponse({"name": state.name, "ready": state.ready}, status_code=200 if state.ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    document = openapi_document(state.name, state.version)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loading = asyncio.get_running_loop().create_task(state.load(), name="load")
        try:
            yield
        finally:
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading
            if state.batcher is not None:
                await state.batcher.stop()

    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    routes = [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", server_ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        *(Route(p, model_metadata, methods=["GET"]) for p in (model, versioned)),
        *(Route(f"{p}/ready", model_ready, methods=["GET"]) for p in (model, versioned)),
        *(Route(f"{p}/infer", infer, methods=["POST"]) for p in (model, versioned)),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_allowed})


def json_response(body: Any) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), media_type=JSON)


async def not_found(request: Request, exc: Exception) -> Response:
    return oip_error(404, f"no route {request.url.path}")


async def not_allowed(request: Request, exc: Exception) -> Response:
    return oip_error(405, f"{request.method} is not allowed on {request.url.path}")
