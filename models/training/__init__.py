"""Training code for the shipped models (not imported by the server)."""
