"""Assay's adapters: the adapter SDK, the sidecar and the built-in framework adapters."""
