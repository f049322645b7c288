"""The protocol layer: REST (FastAPI) and gRPC, both thin adapters over SegmentationService."""
