"""The configuration space: its schema (configs/space.yaml), idea validation, canonical form and
fingerprints. Pure functions over plain data; no I/O except loading the space file."""

from orze.space.fingerprint import fingerprint
from orze.space.schema import Dimension, Space, SpaceError, load_space
from orze.space.validate import META_FIELDS, PRIORITIES, IdeaCheck, check_idea

__all__ = ["Dimension", "Space", "SpaceError", "load_space", "check_idea", "IdeaCheck",
           "META_FIELDS", "PRIORITIES", "fingerprint"]
