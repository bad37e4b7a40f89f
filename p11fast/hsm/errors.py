"""Typed API errors. Each carries its HTTP status; `app.error_middleware` is the one place
that turns them into responses."""

from __future__ import annotations


class ApiError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        return {}


class NotModified(ApiError):
    status = 304


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class MethodNotAllowed(ApiError):
    status = 405

    def __init__(self, allowed: list[str]) -> None:
        super().__init__(f"method not allowed here; allowed: {', '.join(allowed)}")
        self.allowed = allowed

    def headers(self) -> dict[str, str]:
        # webmachine's v3b10 joins the resource's methods without spaces
        return {"Allow": ",".join(self.allowed)}


class NotAcceptable(ApiError):
    status = 406


class RequestTimeout(ApiError):
    status = 408


class Conflict(ApiError):
    status = 409


class PreconditionFailed(ApiError):
    status = 412


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class TooManyRequests(ApiError):
    status = 429


class NotImplementedYet(ApiError):
    status = 501
