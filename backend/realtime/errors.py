"""The closed catalogue of `error` frame codes, and of the library's `response` errors.

An `error` frame never closes the connection: it answers one client message
(echoing its `id`) and, for topic errors, names the `topic`. A `response` to a
`request` that failed carries one of these codes too, or one its method declares
(`MethodDef(errors=...)`). Clients branch on `code`, never on the human-readable
`message`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from .catalogue import catalogue_schema


class ErrorCode(StrEnum):
    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_TOPIC = "unknown_topic"
    TOO_MANY_TOPICS = "too_many_topics"
    SNAPSHOT_FAILED = "snapshot_failed"
    SNAPSHOT_TOO_LARGE = "snapshot_too_large"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    METHOD_NOT_FOUND = "method_not_found"
    INVALID_PARAMS = "invalid_params"
    INTERNAL_ERROR = "internal_error"
    TIMEOUT = "timeout"
    TOO_MANY_REQUESTS = "too_many_requests"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    UNAUTHORIZED = "unauthorized"
    PRINCIPAL_CHANGED = "principal_changed"

    @classmethod
    def __get_pydantic_json_schema__(cls, _core_schema: Any, _handler: Any) -> dict[str, Any]:
        return catalogue_schema(
            "ErrorCode",
            "The code of an `error` frame. Branch on it, never on `message`.",
            ((code, ERROR_CODE_DOCS[code], {}) for code in cls),
        )


#: What each code means and what a client should do about it. Exported as doc
#: comments on the generated TypeScript literal union, so keep it client-facing.
ERROR_CODE_DOCS: dict[ErrorCode, str] = {
    ErrorCode.INVALID_JSON: "The frame was not valid JSON. Fix the client; the connection stays open.",
    ErrorCode.INVALID_MESSAGE: (
        "The frame was JSON but not a valid client message (missing or wrongly typed field, "
        "binary frame). Fix the client; the connection stays open."
    ),
    ErrorCode.UNKNOWN_TYPE: "The `type` field names no client message. The connection stays open.",
    ErrorCode.UNKNOWN_TOPIC: (
        "The topic matches no registered topic, or names a resource that does not exist. "
        "Carries `topic`; the other topics of the same subscribe are still served."
    ),
    ErrorCode.TOO_MANY_TOPICS: (
        "Subscribing would exceed the per-connection topic limit announced in `hello.max_topics`. "
        "Carries `topic`; unsubscribe from something first."
    ),
    ErrorCode.SNAPSHOT_FAILED: (
        "The server could not build the topic's snapshot (internal error or timeout). "
        "Carries `topic`; the client is not subscribed to it and may retry with backoff."
    ),
    ErrorCode.SNAPSHOT_TOO_LARGE: (
        "The topic's snapshot is larger than `hello.max_snapshot_bytes`, so it is not sent. "
        "Carries `topic`; the client is not subscribed to it. Retrying does not help until "
        "the topic shrinks."
    ),
    ErrorCode.FORBIDDEN: (
        "The connection's principal may not subscribe to this topic. Carries `topic`; the "
        "other topics of the same subscribe are still served. Retrying does not help. After "
        "an `auth` (carrying its `id`): the new token no longer allows a topic the connection "
        "was subscribed to; it is unsubscribed, the other topics go on."
    ),
    ErrorCode.UNAVAILABLE: (
        "The server cannot reach its backplane right now, so it cannot subscribe to this "
        "topic. Carries `topic`; the client is not subscribed to it. Retry with backoff."
    ),
    ErrorCode.RATE_LIMITED: (
        "The client sent frames (`hello.frames_per_s`), subscribed to topics "
        "(`hello.subscribes_per_s`) or sent `auth` frames (a few per minute) faster than "
        "allowed; this message was dropped. Slow down: a client that keeps sending while "
        "limited is closed with 1008."
    ),
    ErrorCode.METHOD_NOT_FOUND: (
        "A `response` error: the `request` named no method this server serves. Retrying does not help."
    ),
    ErrorCode.INVALID_PARAMS: (
        "A `response` error: the `request`'s `params` do not match the method's params "
        "type; `details` lists the field errors (`loc`, `msg`, `type`). Fix the call."
    ),
    ErrorCode.INTERNAL_ERROR: (
        "A `response` error: the method failed on the server (logged there with the "
        "connection id). Whether it took effect is unknown: resync from the snapshots. "
        "Answering an `auth`: the server's authentication hook failed; the connection keeps "
        "its credential, retry with backoff."
    ),
    ErrorCode.TIMEOUT: (
        "A `response` error: the method did not finish within the server's "
        "`hello.request_timeout_s` and was cancelled. Whether it took effect is unknown."
    ),
    ErrorCode.TOO_MANY_REQUESTS: (
        "A `response` error: the connection already has `hello.max_requests_in_flight` "
        "requests unanswered; this one was not run. Wait for a response, then retry."
    ),
    ErrorCode.IDEMPOTENCY_KEY_REUSED: (
        "A `response` error: the `request`'s `idempotency_key` was already used (within the "
        "server's window, by the same principal) for a call of another method or with other "
        "params; this one was not run. Use a fresh key for a new call."
    ),
    ErrorCode.UNAUTHORIZED: (
        "Answering an `auth` (with its `id`): the token is not valid, or has expired. The "
        "connection keeps its current credential until that expires (then 4001): get "
        "another token and send `auth` again."
    ),
    ErrorCode.PRINCIPAL_CHANGED: (
        "Answering an `auth` (with its `id`): the token is valid but names another "
        "principal than the connection's, and a connection's principal never changes. The "
        "connection keeps its current credential until that expires (then 4001); to act as "
        "the other principal, open a new connection with that token."
    ),
}
