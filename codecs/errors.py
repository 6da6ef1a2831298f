"""Why a destination did not accept a request (pure: streams/delivery/http.py is the one place
HTTP statuses and transport failures become these).

* DeliveryError                    the destination did not accept a request
  + RetryableError(retry_after)    408, 423, 429, 5xx except 501, timeouts, connection errors
  + PermanentError                 any other 4xx, and 501; never retried
    - AuthError                    401/403: the credentials are wrong

Retry rules are Segment's (errors.ts: "4xx errors are not automatically retried, except for
408, 423, 429"; "5xx are automatically retried, except for 501").
"""

from __future__ import annotations

__all__ = ["AuthError", "DeliveryError", "PermanentError", "RetryableError"]


class DeliveryError(Exception):
    """The request was not accepted. `code` is a stable name for outcomes (e.g. TOO_MANY_REQUESTS)."""

    def __init__(self, reason: str, *, status: int | None = None, code: str = "DELIVERY_ERROR",
                 body: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code
        #: The destination's answer (cut), for the console's samples; "" when none came.
        self.body = body


class RetryableError(DeliveryError):
    """Worth another attempt; `retry_after` (seconds) is the server's hint, when it gave one."""

    def __init__(self, reason: str, *, status: int | None = None, code: str = "RETRYABLE_ERROR",
                 retry_after: float | None = None, body: str = "") -> None:
        super().__init__(reason, status=status, code=code, body=body)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Another attempt would fail the same way."""


class AuthError(PermanentError):
    """401/403: the API key or app code is not accepted."""
