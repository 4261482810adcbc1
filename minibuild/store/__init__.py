"""The content store: blobs, deterministic tar layers, cache records."""
