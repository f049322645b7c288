"""Domain errors: what went wrong, independent of the protocol that reports it."""

from __future__ import annotations


class MaskserveError(Exception):
    """Base class; ``code`` is a stable machine-readable name."""

    code = "internal"


class InvalidImageError(MaskserveError):
    """The body is not a decodable image, or its size is out of bounds."""

    code = "invalid_image"


class ImageTooLargeError(InvalidImageError):
    code = "image_too_large"


class UnsupportedMediaTypeError(MaskserveError):
    code = "unsupported_media_type"


class InvalidOptionError(MaskserveError):
    code = "invalid_option"


class NotAcceptableError(MaskserveError):
    """No answer type the client accepts (HTTP ``Accept``) is one the route produces."""

    code = "not_acceptable"


class ModelNotFoundError(MaskserveError):
    code = "model_not_found"


class ModelNotReadyError(MaskserveError):
    code = "model_not_ready"


class OverloadedError(MaskserveError):
    """The model's queue is full; the client should retry later (``retry_after_s``: when,
    from the queue's measured drain rate; None: unknown)."""

    code = "overloaded"

    def __init__(self, message: str = "", retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceededError(MaskserveError):
    code = "deadline_exceeded"


class InferenceError(MaskserveError):
    """The batch this request rode in failed on the worker."""

    code = "inference_failed"
