"""Frozen-backbone feature stores under features/: format, loading, extraction, import, checks."""
