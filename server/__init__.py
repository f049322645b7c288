"""maskserve runtime."""
