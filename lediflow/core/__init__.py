"""Foundations every layer uses: the error types and crash-safe, verified file I/O (atomic writes, checksums, manifests, provenance)."""
