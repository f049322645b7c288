"""YOLACT and YOLACT++ exactly as published, plus the configs of our own models."""
