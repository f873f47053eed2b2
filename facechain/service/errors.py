"""The one error type the service turns into an HTTP answer: ``{"error": "<one line>"}`` with a status."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the service refuses; ``status`` is the HTTP status (400, 401, 404, 409, 413, 415, 422)."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.message = " ".join(str(message).split())  # one line, whatever the cause contained
        super().__init__(self.message)
