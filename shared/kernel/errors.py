"""Business errors that carry their own HTTP status and error code (SPEC §4 error format)."""

from __future__ import annotations


class HookhubError(Exception):
    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        """`extra`: more fields of the error body (a template's `line` and `column`)."""
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(HookhubError):
    status = 400
    code = "bad_request"


class Unauthorized(HookhubError):
    status = 401
    code = "unauthorized"


class Forbidden(HookhubError):
    status = 403
    code = "forbidden"


class NotFound(HookhubError):
    status = 404
    code = "not_found"


class Conflict(HookhubError):
    status = 409
    code = "conflict"


class MethodNotAllowed(HookhubError):
    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(HookhubError):
    status = 413
    code = "payload_too_large"


class Invalid(HookhubError):
    status = 422
    code = "invalid"


class RateLimited(HookhubError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})


class Unavailable(HookhubError):
    """Kafka or MongoDB cannot take the work now: nothing was accepted, the caller retries."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": "5"})


class KafkaUnavailable(Unavailable):
    code = "kafka_unavailable"


class DatabaseUnavailable(Unavailable):
    code = "database_unavailable"
