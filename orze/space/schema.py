"""Schema of configs/space.yaml: dimensions, their types, allowed values, defaults and conditions.

A broken space file is a user error that must be reported with the file and the field, so the
schema is a pydantic model and every default is itself checked against its own dimension.
"""

from __future__ import annotations

from functools import reduce
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FUSED = "fused"  # `when: {backbone: fused}`: applies only when that dimension holds a list


class SpaceError(ValueError):
    """configs/space.yaml is missing or invalid; the message names the file and the field."""


class Dimension(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    type: Literal["categorical", "int", "float"]
    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    default: Any = None
    when: dict[str, list[Any] | str] | None = None
    fusion: int = Field(default=1, ge=1)
    cells: bool = True
    search: bool = True
    group: str = "other"
    help: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> "Dimension":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical dimension needs `choices`")
            if any(not isinstance(c, str) for c in self.choices):
                raise ValueError("categorical choices must be strings")
        else:
            if self.choices is None and (self.low is None or self.high is None):
                raise ValueError(f"an {self.type} dimension needs `choices` or `low` and `high`")
            if self.choices is not None and self.low is not None:
                raise ValueError("give either `choices` or `low`/`high`, not both")
            if self.low is not None and self.high is not None and self.low > self.high:
                raise ValueError(f"low ({self.low}) is above high ({self.high})")
            if self.log and (self.low is None or self.low <= 0):
                raise ValueError("a log-scale range needs low > 0")
        if self.fusion > 1 and self.type != "categorical":
            raise ValueError("only a categorical dimension can allow fusion lists")
        return self

    @property
    def is_discrete(self) -> bool:
        return self.choices is not None

    def describe_allowed(self) -> str:
        if self.choices is not None:
            allowed = "one of " + ", ".join(str(c) for c in self.choices)
            if self.fusion > 1:
                allowed += f" (or a list of up to {self.fusion} distinct ones)"
            return allowed
        kind = "an integer" if self.type == "int" else "a number"
        return f"{kind} in [{_fmt(self.low)}, {_fmt(self.high)}]"


def _fmt(x: float | None) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


class Constraint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    divisible: tuple[str, str]


class Space(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    dimensions: dict[str, Dimension]
    constraints: list[Constraint] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> "Space":
        from orze.space.validate import coerce_value  # local: validate imports schema

        named = {}
        for name, dim in self.dimensions.items():
            named[name] = dim.model_copy(update={"name": name})
        object.__setattr__(self, "dimensions", named)
        for name, dim in named.items():
            ok, value_or_err = coerce_value(dim, dim.default)
            if not ok:
                raise ValueError(f"dimensions.{name}.default: {value_or_err}")
            for other in (dim.when or {}):
                if other not in named:
                    raise ValueError(f"dimensions.{name}.when names unknown dimension '{other}'")
        for c in self.constraints:
            for d in c.divisible:
                if d not in named:
                    raise ValueError(f"constraints: unknown dimension '{d}'")
        return self

    def cardinality(self) -> int:
        """Number of discrete cells: the product of the choice counts of cell dimensions."""
        counts = [len(d.choices) for d in self.dimensions.values() if d.is_discrete and d.cells]
        return reduce(lambda a, b: a * b, counts, 1)

    def defaults(self) -> dict[str, Any]:
        return {n: d.default for n, d in self.dimensions.items()}

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for n, d in self.dimensions.items():
            out.setdefault(d.group, []).append(n)
        return out


def load_space(path: Path) -> Space:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpaceError(f"{path}: not found (run `orze init` to create the default space)") from None
    except yaml.YAMLError as e:
        raise SpaceError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: expected a mapping with `dimensions:`")
    try:
        return Space.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpaceError(f"{path}: {where}: {first['msg']}") from None

