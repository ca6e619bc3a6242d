"""The OpenAI Chat Completions shapes the ``/v1`` door speaks: requests, answers, chunks and
OpenAI's error JSON (``{"error": {"message", "type", "param", "code"}}``)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "OPENAI_ERRORS",
    "ChatCompletionIn",
    "CompletionMessageIn",
    "completion",
    "completion_chunk",
    "openai_error",
    "usage_of",
]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_CODES = {401: "invalid_api_key", 404: "not_found", 409: "conflict", 429: "rate_limit_exceeded"}


def error_body(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "api_error"),
            "param": param,
            "code": code or _CODES.get(status),
        }
    }


def openai_error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error as OpenAI's SDKs parse it. Our 422 (bad input) is OpenAI's 400."""
    status = 400 if status == 422 else status
    return JSONResponse(
        error_body(status, message, code=code, param=param), status_code=status, headers=headers
    )


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorOut(BaseModel):
    """OpenAI's error JSON."""

    error: OpenAIErrorDetail


OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIErrorOut, "description": text}
    for code, text in (
        (400, "bad request (OpenAI's invalid_request_error)"),
        (401, "missing or invalid API key or token"),
        (404, "unknown model (agent) or conversation"),
        (409, "conflicts with the current state (e.g. the conversation is another agent's)"),
        (413, "request body too large"),
        (429, "rate or concurrency limit reached; see Retry-After"),
        (502, "the model provider failed (the user's message is kept)"),
        (503, "a store is unavailable; nothing was written"),
        (504, "the agent timed out (the user's message is kept)"),
    )
}


class _Open(BaseModel):
    # clients send many OpenAI fields we do not use (temperature, n, user, tools …): ignore them
    model_config = ConfigDict(extra="ignore")


class CompletionMessageIn(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The text of the message (text parts joined; other parts are not supported)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(
            str(p.get("text", "")) for p in self.content if p.get("type") in ("text", "input_text")
        )


class StreamOptions(_Open):
    include_usage: bool = False


class ChatCompletionIn(_Open):
    model: Annotated[str, Field(min_length=1, max_length=200, description="the agent's id")]
    messages: Annotated[list[CompletionMessageIn], Field(min_length=1, max_length=1000)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    metadata: dict[str, str] | None = Field(
        default=None, description="`conversation_id` continues that conversation"
    )


def usage_of(body: dict[str, Any]) -> dict[str, int]:
    usage = body.get("usage") or {}
    return {
        "prompt_tokens": int(usage.get("input_tokens") or 0),
        "completion_tokens": int(usage.get("output_tokens") or 0),
        "total_tokens": int(usage.get("total_tokens") or 0),
    }


def completion(body: dict[str, Any], *, model: str) -> dict[str, Any]:
    """A turn's JSON answer (``ChatOut``) as a ``chat.completion``."""
    reply = body["agent_message"]
    return {
        "id": f"chatcmpl-{reply['id']}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply["content"]},
                "finish_reason": "stop",
            }
        ],
        "usage": usage_of(body),
        "conversation_id": body["conversation_id"],
    }


def completion_chunk(
    completion_id: str,
    *,
    model: str,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": []
        if usage is not None
        else [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk
