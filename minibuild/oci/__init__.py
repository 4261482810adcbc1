"""OCI images: the model (model.py), immutable Image (image.py), archives (archive.py), self-check (validate.py)."""
