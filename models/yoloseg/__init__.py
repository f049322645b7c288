"""Ultralytics YOLOv8 / YOLO11 segmentation ONNX exports, served with YOLACT's mask assembly."""
