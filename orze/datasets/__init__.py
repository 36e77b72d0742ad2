"""Small real datasets in Orze's import formats (tests, scripts/campaign_digits.py, docs/tasks.md)."""
