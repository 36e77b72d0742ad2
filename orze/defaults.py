"""Where the default configs/ and prompts/ that `orze init` writes come from: inside an installed
wheel they are packaged under orze/_defaults/; in a source checkout they are the repository's
own configs/ and prompts/ (the single source of both)."""

from __future__ import annotations

from pathlib import Path


def defaults_root() -> Path:
    packaged = Path(__file__).resolve().parent / "_defaults"
    if (packaged / "configs" / "space.yaml").exists():
        return packaged
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "configs" / "space.yaml").exists():
        return checkout
    raise FileNotFoundError("orze's default configs/ are missing from this installation")


DEFAULT_FILES = ("configs/orze.yaml", "configs/space.yaml", "prompts/research.md", "prompts/rules.md",
                 "features/README.md", "runs/README.md")
