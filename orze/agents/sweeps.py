"""Auto-sweeps: when a finished run enters the top-K, expand it into a few capped variants.

Configured by the `sweeps:` section of configs/orze.yaml (`SweepConfig`):

    sweeps:
      enabled: true
      top_k: 3            # a run is a base while it is among the K best by the validation metric
      per_base: 4         # at most this many variants of one base
      max_total: 40       # at most this many sweep ideas in the whole campaign
      interval_s: 30      # how often the host looks at the leaderboard
      rules:              # applied in order until per_base is reached
        - {dim: learning_rate, factors: [0.5, 2.0]}
        - {dim: focal_gamma, deltas: [-0.5, 0.5]}
        - {dim: dropout, deltas: [-0.1, 0.1]}

A variant changes one dimension of the base's canonical config; variants outside the space (out
of range, not applicable to the base, breaking a constraint) are skipped, never clipped (clipping
would make bit-identical siblings), and so is a variant whose fingerprint equals the base's, a
sibling's, or that of anything already run, queued or waiting in the inbox (so no sweep slot is
spent on a duplicate the daemon would refuse). Ideas carry `source: sweep`, `agent: sweeps`,
`parent: <base id>`.

Hosting: `orze run` builds a SweepRunner when `sweeps.enabled` and the daemon hosts agents (the
default; `--no-agents` turns both off), and AgentHost.tick calls `tick()` on every node; the
markers below make that safe. `pending()` says whether a top-K base is still to be expanded
(`orze run --until-idle` waits for it); `summary()` is what `orze status` shows.

Each base is expanded exactly once across all nodes: the expanding node first creates
runs/agents/_sweeps/bases/<base id>.json exclusively (O_CREAT|O_EXCL works on NFS and Lustre).
The total cap is checked against those markers; two nodes expanding different bases at the same
instant can overshoot it by at most one base's variants. Selection reads the validation metric
only (`leaderboard.ranked`), never a test metric.
"""

from __future__ import annotations

import time
from typing import Any

from orze.agent_config import SweepConfig, SweepRule  # noqa: F401 - SweepRule re-exported
from orze.layout import Layout
from orze.space import Space, check_idea, fingerprint
from orze.store.atomic import atomic_write_json, create_exclusive, read_json_or_none
from orze.store.inbox import submit_ideas
from orze.store.leaderboard import iter_rows, ranked

SWEEP_AGENT = "sweeps"


def expand(base: dict[str, Any], space: Space, cfg: SweepConfig, limit: int | None = None,
           known: set[str] | None = None) -> list[dict[str, Any]]:
    """Variants of one finished leaderboard row (pure); `known`: fingerprints to avoid."""
    config = dict(base.get("config") or {})
    cap = min(cfg.per_base, limit if limit is not None else cfg.per_base)
    seen = ({fingerprint(config)} if config else set()) | set(known or ())
    out: list[dict[str, Any]] = []
    for rule in cfg.rules:
        if rule.dim not in config:
            continue  # e.g. focal_gamma of a bce run
        for value, label in rule.variants(config[rule.dim]):
            if len(out) >= cap:
                return out
            idea = {**config, rule.dim: value}
            check = check_idea(space, idea)
            if not check.ok:
                continue
            fp = fingerprint(check.config)
            if fp in seen:
                continue
            seen.add(fp)
            idea = dict(check.config)
            idea.update(idea_name=f"sweep {label} of {base['id']}", parent=str(base["id"]),
                        source="sweep", agent=SWEEP_AGENT,
                        rationale=f"auto-sweep: {label} around top-{cfg.top_k} run {base['id']}")
            out.append(idea)
    return out


class SweepRunner:
    """Called from the daemon's loop (via AgentHost.tick); cheap when nothing changed."""

    def __init__(self, layout: Layout, cfg: SweepConfig, space: Space):
        cfg.check_against(space)  # a rule naming an unknown dimension is a config error, at start
        self.layout = layout
        self.cfg = cfg
        self.space = space
        self.dir = layout.agents / "_sweeps" / "bases"
        self._last_check = 0.0
        self._last_stat: tuple[int, float] | None = None

    def _total(self) -> int:
        total = 0
        if self.dir.is_dir():
            for p in self.dir.glob("*.json"):
                try:
                    total += int((read_json_or_none(p) or {}).get("count", 0))
                except (TypeError, ValueError):
                    continue
        return total

    def _claim(self, base_id: str) -> bool:
        self.dir.mkdir(parents=True, exist_ok=True)
        return create_exclusive(self.dir / f"{base_id}.json", b"", self.layout.claim_method)

    def _bases(self) -> list[dict[str, Any]]:
        return ranked(iter_rows(self.layout.leaderboard))[: self.cfg.top_k]

    def pending(self) -> bool:
        """Whether a top-K base is not expanded yet while the total cap leaves room."""
        if not self.cfg.enabled or self.cfg.max_total - self._total() <= 0:
            return False
        return any(not (self.dir / f"{b['id']}.json").exists() for b in self._bases())

    def _known(self) -> set[str]:
        from orze.agents.context import read_pending

        rows = list(iter_rows(self.layout.leaderboard))
        known = {fingerprint(r["config"]) for r in rows if isinstance(r.get("config"), dict)}
        for cfg in read_pending(self.layout, {str(r.get("id")) for r in rows}):
            check = check_idea(self.space, {k: v for k, v in cfg.items()})
            if check.config is not None:
                known.add(fingerprint(check.config))
        return known

    def tick(self, now: float | None = None, force: bool = False) -> list[dict[str, Any]]:
        """Expand new top-K bases; returns the ideas submitted this time."""
        if not self.cfg.enabled:
            return []
        now = time.time() if now is None else now
        if not force and now - self._last_check < self.cfg.interval_s:
            return []
        self._last_check = now
        try:
            st = self.layout.leaderboard.stat()
        except FileNotFoundError:
            return []
        stat = (st.st_size, st.st_mtime)
        if not force and stat == self._last_stat:
            return []
        self._last_stat = stat
        submitted: list[dict[str, Any]] = []
        known: set[str] | None = None
        for base in self._bases():
            marker = self.dir / f"{base['id']}.json"
            if marker.exists():
                continue
            room = self.cfg.max_total - self._total()  # markers already count this tick's bases
            if room <= 0:
                break
            if not self._claim(str(base["id"])):
                continue
            if known is None:
                known = self._known()
            ideas = expand(base, self.space, self.cfg, limit=room, known=known)
            known |= {fingerprint({k: v for k, v in i.items() if k in self.space.dimensions}) for i in ideas}
            if ideas:
                submit_ideas(self.layout, ideas, origin="sweep")
            atomic_write_json(marker, {"base": base["id"], "count": len(ideas), "t": now})
            submitted.extend(ideas)
        return submitted


def summary(layout: Layout, cfg: SweepConfig | None = None) -> dict[str, Any]:
    """Bases expanded and sweep ideas submitted so far (from the markers), for `orze status`."""
    d = layout.agents / "_sweeps" / "bases"
    bases, ideas = 0, 0
    if d.is_dir():
        for p in d.glob("*.json"):
            data = read_json_or_none(p)   # None: a base claimed, its record not yet written
            try:
                ideas += int(data.get("count", 0))
            except (AttributeError, TypeError, ValueError):
                continue
            bases += 1
    out: dict[str, Any] = {"bases": bases, "ideas": ideas}
    if cfg is not None:
        out.update(enabled=cfg.enabled, max_total=cfg.max_total, per_base=cfg.per_base, top_k=cfg.top_k)
    return out
