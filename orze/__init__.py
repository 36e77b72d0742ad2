"""Orze: an orchestrator for autonomous ML research campaigns.

Agents write ideas (YAML) into a shared research directory; `orze run` daemons admit, queue,
claim and train them; results land on an append-only leaderboard that the agents read back.
See docs/architecture.md for the map of the package.
"""

__version__ = "0.1.0"
