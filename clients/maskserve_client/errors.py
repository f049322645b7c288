"""The one exception type the clients raise for server-side and transport failures."""

from __future__ import annotations


class MaskserveClientError(Exception):
    """A request failed.

    Attributes:
        status: the HTTP status (REST), or the HTTP status matching the gRPC status code
            (gRPC, see :data:`maskserve_client.grpc.HTTP_STATUS`); 0 when no response
            arrived at all (connection refused, timeout).
        code: the server's stable machine-readable reason (``"overloaded"``,
            ``"model_not_found"``, ...), or a client-side one (``"transport_error"``).
        message: human-readable detail.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code} ({status}): {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[int, str, str]]:
        return (type(self), (self.status, self.code, self.message))
