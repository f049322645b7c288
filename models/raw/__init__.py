"""Tensor models: an ONNX graph served as the plain tensor model it is (names, shapes and
datatypes from the file), for clients of the Open Inference Protocol that bring their own
pre- and post-processing (Ultralytics' ``TritonRemoteModel``, perf_analyzer)."""
