from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MaskFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RLE_COMPRESSED: _ClassVar[MaskFormat]
    RLE_RAW_RUNS: _ClassVar[MaskFormat]
    NONE: _ClassVar[MaskFormat]
    POLYGON: _ClassVar[MaskFormat]
RLE_COMPRESSED: MaskFormat
RLE_RAW_RUNS: MaskFormat
NONE: MaskFormat
POLYGON: MaskFormat

class SegmentOptions(_message.Message):
    __slots__ = ("score_threshold", "max_detections", "classes", "mask_format", "polygon_tolerance")
    SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    MASK_FORMAT_FIELD_NUMBER: _ClassVar[int]
    POLYGON_TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    score_threshold: float
    max_detections: int
    classes: _containers.RepeatedScalarFieldContainer[int]
    mask_format: MaskFormat
    polygon_tolerance: float
    def __init__(self, score_threshold: _Optional[float] = ..., max_detections: _Optional[int] = ..., classes: _Optional[_Iterable[int]] = ..., mask_format: _Optional[_Union[MaskFormat, str]] = ..., polygon_tolerance: _Optional[float] = ...) -> None: ...

class SegmentRequest(_message.Message):
    __slots__ = ("model", "image", "options")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    image: bytes
    options: SegmentOptions
    def __init__(self, model: _Optional[str] = ..., image: _Optional[bytes] = ..., options: _Optional[_Union[SegmentOptions, _Mapping]] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ...) -> None: ...

class RunLengths(_message.Message):
    __slots__ = ("counts",)
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, counts: _Optional[_Iterable[int]] = ...) -> None: ...

class Ring(_message.Message):
    __slots__ = ("coords",)
    COORDS_FIELD_NUMBER: _ClassVar[int]
    coords: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, coords: _Optional[_Iterable[float]] = ...) -> None: ...

class Polygon(_message.Message):
    __slots__ = ("exterior", "holes")
    EXTERIOR_FIELD_NUMBER: _ClassVar[int]
    HOLES_FIELD_NUMBER: _ClassVar[int]
    exterior: Ring
    holes: _containers.RepeatedCompositeFieldContainer[Ring]
    def __init__(self, exterior: _Optional[_Union[Ring, _Mapping]] = ..., holes: _Optional[_Iterable[_Union[Ring, _Mapping]]] = ...) -> None: ...

class Polygons(_message.Message):
    __slots__ = ("polygons",)
    POLYGONS_FIELD_NUMBER: _ClassVar[int]
    polygons: _containers.RepeatedCompositeFieldContainer[Polygon]
    def __init__(self, polygons: _Optional[_Iterable[_Union[Polygon, _Mapping]]] = ...) -> None: ...

class Mask(_message.Message):
    __slots__ = ("height", "width", "compressed", "runs", "polygons")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    COMPRESSED_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    POLYGONS_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    compressed: bytes
    runs: RunLengths
    polygons: Polygons
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ..., compressed: _Optional[bytes] = ..., runs: _Optional[_Union[RunLengths, _Mapping]] = ..., polygons: _Optional[_Union[Polygons, _Mapping]] = ...) -> None: ...

class Detection(_message.Message):
    __slots__ = ("class_id", "label", "score", "box", "mask", "mask_score")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    MASK_SCORE_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    label: str
    score: float
    box: Box
    mask: Mask
    mask_score: float
    def __init__(self, class_id: _Optional[int] = ..., label: _Optional[str] = ..., score: _Optional[float] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., mask: _Optional[_Union[Mask, _Mapping]] = ..., mask_score: _Optional[float] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queue_seconds", "inference_seconds", "postprocess_seconds", "total_seconds")
    QUEUE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    POSTPROCESS_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    queue_seconds: float
    inference_seconds: float
    postprocess_seconds: float
    total_seconds: float
    def __init__(self, queue_seconds: _Optional[float] = ..., inference_seconds: _Optional[float] = ..., postprocess_seconds: _Optional[float] = ..., total_seconds: _Optional[float] = ...) -> None: ...

class SegmentResponse(_message.Message):
    __slots__ = ("model", "width", "height", "detections", "timings")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    model: str
    width: int
    height: int
    detections: _containers.RepeatedCompositeFieldContainer[Detection]
    timings: Timings
    def __init__(self, model: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., detections: _Optional[_Iterable[_Union[Detection, _Mapping]]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ...) -> None: ...

class StreamFrame(_message.Message):
    __slots__ = ("frame_id", "image", "model", "options", "skip_stale")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SKIP_STALE_FIELD_NUMBER: _ClassVar[int]
    frame_id: int
    image: bytes
    model: str
    options: SegmentOptions
    skip_stale: bool
    def __init__(self, frame_id: _Optional[int] = ..., image: _Optional[bytes] = ..., model: _Optional[str] = ..., options: _Optional[_Union[SegmentOptions, _Mapping]] = ..., skip_stale: _Optional[bool] = ...) -> None: ...

class FrameError(_message.Message):
    __slots__ = ("code", "reason", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    message: str
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class StreamResult(_message.Message):
    __slots__ = ("frame_id", "skipped", "result", "error")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    frame_id: int
    skipped: bool
    result: SegmentResponse
    error: FrameError
    def __init__(self, frame_id: _Optional[int] = ..., skipped: _Optional[bool] = ..., result: _Optional[_Union[SegmentResponse, _Mapping]] = ..., error: _Optional[_Union[FrameError, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class Batching(_message.Message):
    __slots__ = ("max_batch_size", "max_queue_delay_ms", "max_queue_size", "instances")
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_SIZE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    max_batch_size: int
    max_queue_delay_ms: float
    max_queue_size: int
    instances: int
    def __init__(self, max_batch_size: _Optional[int] = ..., max_queue_delay_ms: _Optional[float] = ..., max_queue_size: _Optional[int] = ..., instances: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "family", "class_names", "input_size", "devices", "dtype", "default_score_threshold", "default_max_detections", "batching", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MAX_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    name: str
    family: str
    class_names: _containers.RepeatedScalarFieldContainer[str]
    input_size: int
    devices: _containers.RepeatedScalarFieldContainer[str]
    dtype: str
    default_score_threshold: float
    default_max_detections: int
    batching: Batching
    extra: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., family: _Optional[str] = ..., class_names: _Optional[_Iterable[str]] = ..., input_size: _Optional[int] = ..., devices: _Optional[_Iterable[str]] = ..., dtype: _Optional[str] = ..., default_score_threshold: _Optional[float] = ..., default_max_detections: _Optional[int] = ..., batching: _Optional[_Union[Batching, _Mapping]] = ..., extra: _Optional[_Mapping[str, str]] = ...) -> None: ...
