"""Inspect tasks shipped with the adapter, on repo data (``data/*.jsonl``), that run offline."""
