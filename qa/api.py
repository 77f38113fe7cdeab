"""The JSON HTTP API beside the chat UI: POST /api/ask, POST /api/retrieve, GET /api/health, /api/docs.

A FastAPI app mounted at /api inside Gradio's own app: the same process, port, body cap and refusals
(`qa.server.Guard`) as the UI, and none of Gradio's queue protocol (join, then a polled event stream),
which cost ~20× the answer itself. Bodies are parsed here, whatever their Content-Type (`curl -d`
sends form-encoded), so every bad input gets a 4xx `{"error": "…"}` that says what to fix: invalid
JSON or UTF-8 → 400; a missing, empty, non-text or over-long question, bad history or k → 422.

Answers are computed by a `qa.engine.Engine`: worker processes that each hold the read-only index (one
per core by default), the same pool the chat UI asks through, or this process's threads.
"""

import json
import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal

from .engine import encodes
from .errors import QAError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .bot import Bot
    from .engine import Engine

logger = logging.getLogger(__name__)

MAX_MESSAGES = 40  # history messages accepted (the UI keeps as many)
MAX_MESSAGE_CHARS = 4000  # one history message: an answer with its three quotes fits
MAX_K = 50
# Shown in the OpenAPI schema and in error messages, whatever the corpus: the shape of a body, not a question
# about one corpus.
EXAMPLE_QUESTION = "When was it founded?"


# ---- what a worker computes (qa.engine runs these where the bot is) ------------------------------------


@encodes(lambda bot, question, history: bot.query_texts(question, history))
def ask_json(bot: "Bot", question: Any, history: list[dict]) -> dict:
    """bot.ask as JSON-ready data: every field of Answer, present and future (dataclasses.asdict)."""
    return asdict(bot.ask(question, history=history))


def retrieve_json(bot: "Bot", question: Any, k: int) -> list[dict]:
    return [asdict(p) for p in bot.retrieve(question, k=k)]


# ---- the HTTP side ---------------------------------------------------------------------------------------


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# What to fix, by pydantic error type: each a format string over the field ("where") and the error's ctx.
_FIXES = {
    "missing": "{where} is missing",
    "extra_forbidden": "{where} is not a field of this request",
    "string_type": "{where} must be text",
    "int_type": "{where} must be a whole number",
    "int_parsing": "{where} must be a whole number",
    "int_from_float": "{where} must be a whole number",
    "list_type": '{where} must be a list of {{"role", "content"}} messages',
    "dict_type": "{where} must be a JSON object",
    "model_type": "{where} must be a JSON object",
    "model_attributes_type": "{where} must be a JSON object",
    "literal_error": "{where} must be {expected}",
    "too_long": "{where} has {actual_length} items; the limit is {max_length}",
    "string_too_long": "{where} is over {max_length:,} characters",
    "greater_than_equal": "{where} must be between 1 and {max_k}",
    "less_than_equal": "{where} must be between 1 and {max_k}",
}


def _fix(error: dict) -> str:
    """One pydantic error as what to fix: "history.3.role: must be 'user' or 'assistant'"."""
    where = ".".join(str(p) for p in error.get("loc", ())) or "the body"
    fields = {"expected": "one of the allowed values", **(error.get("ctx") or {}), "where": where, "max_k": MAX_K}
    template = _FIXES.get(error.get("type", ""))
    try:
        return template.format(**fields) if template else f"{where}: {error.get('msg', 'invalid')}"
    except (KeyError, ValueError, TypeError):  # a ctx without the figure the template names: pydantic's words
        return f"{where}: {error.get('msg', 'invalid')}"


def build_api(engine: "Engine") -> "FastAPI":
    """The /api app over engine (qa.engine): its workers answer, its index is described by /api/health."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
    from starlette.exceptions import HTTPException

    from .answer import Answer
    from .retrieval import Passage

    class Message(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        role: Literal["user", "assistant"]
        content: str = Field(max_length=MAX_MESSAGE_CHARS)

    class AskRequest(BaseModel):
        """A question, with the conversation so far for follow-ups ("Who publishes it?")."""
        model_config = ConfigDict(extra="forbid", strict=True,
                                  json_schema_extra={"examples": [{"question": EXAMPLE_QUESTION, "history": []}]})
        question: str = Field(description="at most 2,000 characters")
        history: list[Message] = Field(default_factory=list, max_length=MAX_MESSAGES,
                                       description="earlier turns, oldest first")

    class RetrieveRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True,
                                  json_schema_extra={"examples": [{"question": "annual report", "k": 3}]})
        question: str = Field(description="at most 2,000 characters")
        k: int = Field(5, ge=1, le=MAX_K, description="how many passages")

    app = FastAPI(title="qa", summary="Answers only by quoting its documents.", docs_url="/docs",
                  redoc_url=None, openapi_url="/openapi.json", swagger_ui_oauth2_redirect_url=None)

    def parse(body: bytes, model: type[BaseModel]) -> BaseModel:
        example = json.dumps(model.model_config["json_schema_extra"]["examples"][0])
        try:
            data = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise BadRequest(400, f"the body is not UTF-8 (byte {e.start}); send UTF-8 JSON such as {example}") from e
        except json.JSONDecodeError as e:
            raise BadRequest(400, f"the body is not JSON ({e.msg} at character {e.pos}); send {example}") from e
        if not isinstance(data, dict):
            raise BadRequest(422, f"the body must be a JSON object such as {example}")
        try:
            return model.model_validate(data)
        except ValidationError as e:
            fixes = "; ".join(_fix(err) for err in e.errors(include_url=False)[:5])
            raise BadRequest(422, f"{fixes} — send {example}") from e

    async def answer(call):
        try:
            return await call
        except QAError as e:  # the bot's refusals: an empty or over-long question
            message = str(e)
            raise BadRequest(422, message[:1].upper() + message[1:]) from e

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, e: BadRequest):
        return JSONResponse({"error": e.message}, status_code=e.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):
        hint = " — see /api/docs" if e.status_code in (404, 405) else ""
        return JSONResponse({"error": f"{e.detail}{hint}"}, status_code=e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        return JSONResponse({"error": "; ".join(_fix(err) for err in e.errors()[:5])}, status_code=422)

    @app.exception_handler(Exception)
    async def failed(request: Request, e: Exception):  # logged with its traceback; the caller gets no trace
        logger.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": "the server failed to answer; the error is in its log"}, status_code=500)

    errors = {400: {"description": "not JSON or not UTF-8"}, 413: {"description": "body over 1 MiB"},
              422: {"description": "a missing, empty, non-text or over-long field"}}

    @app.post("/ask", summary="Answer a question by quoting the documents", responses=errors,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"$ref": "#/components/schemas/AskRequest"}}}}},
              response_description="The reply (Markdown), its quotes with offsets into their documents, "
                                   "whether the bot declined, and the query it searched for")
    async def ask(request: Request):
        body = parse(await request.body(), AskRequest)
        history = [m.model_dump() for m in body.history]
        return await answer(engine.run(ask_json, body.question, history))

    @app.post("/retrieve", summary="The k best passages for a question", responses=errors,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"$ref": "#/components/schemas/RetrieveRequest"}}}}})
    async def retrieve(request: Request):
        body = parse(await request.body(), RetrieveRequest)
        return {"passages": await answer(engine.run(retrieve_json, body.question, body.k))}

    @app.get("/health", summary="The index being served (format, model, documents, chunks, build time), "
                                "the worker processes, what each has answered, and the batches they were "
                                "answered in (by size)")
    async def health():
        return {"status": "ok", "workers": engine.workers, **health_fields(engine.manifest()),
                "answered_by": engine.answered_by(), "batches": engine.batch_sizes()}

    def openapi() -> dict:
        """FastAPI's schema plus the request bodies (parsed by hand) and the Answer (a dataclass)."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version="1", summary=app.summary, routes=app.routes,
                                 servers=[{"url": "/api"}])
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            shapes = {"AskRequest": AskRequest.model_json_schema(ref_template="#/components/schemas/{model}"),
                      "RetrieveRequest": RetrieveRequest.model_json_schema(ref_template="#/components/schemas/{model}"),
                      "Answer": TypeAdapter(Answer).json_schema(ref_template="#/components/schemas/{model}"),
                      "Passage": TypeAdapter(Passage).json_schema(ref_template="#/components/schemas/{model}")}
            for name, shape in shapes.items():
                components.update(shape.pop("$defs", {}))
                components[name] = shape
            ok = schema["paths"]["/ask"]["post"]["responses"]["200"]["content"]["application/json"]
            ok["schema"] = {"$ref": "#/components/schemas/Answer"}
            ok = schema["paths"]["/retrieve"]["post"]["responses"]["200"]["content"]["application/json"]
            ok["schema"] = {"type": "object", "properties": {
                "passages": {"type": "array", "items": {"$ref": "#/components/schemas/Passage"}}}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


def health_fields(manifest: dict) -> dict:
    """What /api/health says about the index, from its manifest: format, model, documents, chunks, build time."""
    counts = manifest.get("counts", {})
    return {
        "index_format": manifest.get("format_version"),
        "model": manifest.get("model", {}).get("name"),
        "documents": counts.get("documents"),
        "chunks": counts.get("chunks"),
        "built_at": manifest.get("built_at"),
    }
