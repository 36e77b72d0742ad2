"""Durable state on the shared filesystem: atomic writes, the leaderboard, queue, claims, events."""
