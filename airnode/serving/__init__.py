"""The model server: health and smoke checks over HTTP (requests)."""
