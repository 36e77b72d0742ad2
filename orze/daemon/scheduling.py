"""Which queued idea starts on which free slot: priority order, within each device's memory.

The queue is read through a cached view (orze.store.queue.View). For the head of the queue the
scheduler picks the first free slot whose device has room for the idea's estimated peak memory
(orze.daemon.packing: learned from every recorded run, this node's own at once); if the head fits
nowhere it waits for a running experiment to end rather than run smaller ideas past it, so priority
order holds (`memory_blocked` tells the loop not to spin meanwhile).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from orze.config import SchedulerConfig
from orze.daemon.packing import PeakIndex
from orze.daemon.slot_state import SlotState, SlotTable
from orze.layout import Layout
from orze.store import queue
from orze.store.leaderboard import Tail

log = logging.getLogger(__name__)

# start(queue name, slot, attempt, (need MiB, basis)) -> True if the experiment started there
StartFn = Callable[[str, SlotState, int, tuple[float, str]], bool]


class Scheduler:
    def __init__(self, layout: Layout, cfg: SchedulerConfig, table: SlotTable, tail: Tail):
        self.layout, self.cfg, self.table, self.tail = layout, cfg, table, tail
        self.queue_view = queue.View(layout, min_age_s=cfg.poll_s)
        self.peaks = PeakIndex()
        self.memory_blocked = False

    def learn(self) -> None:
        """Read newly recorded rows (all nodes): their peak memory feeds the packing estimates,
        their ids let lease scans skip runs that are finished."""
        try:
            for row in self.tail.new_rows():
                self.peaks.add(row)
        except OSError as e:
            log.warning("leaderboard read failed: %s", e)

    def estimate(self, config: dict[str, Any], device: str) -> tuple[float, str]:
        return self.peaks.estimate(config, device, self.cfg.default_peak_mb)

    def slot_for(self, config: dict[str, Any], free: list[SlotState]) -> tuple[SlotState, tuple[float, str]] | None:
        """The first free slot whose device has room for this configuration, by estimate."""
        for state in free:
            need = self.estimate(config, state.slot.device)
            if self.table.ledger.fits(state.slot.device, need[0]):
                return state, need
        return None

    def fill(self, free: list[SlotState], start: StartFn, may_start: Callable[[], bool]) -> None:
        """Start queued ideas on `free` slots (removed from it as they fill)."""
        self.memory_blocked = False
        if not free:
            return
        self.queue_view.refresh()
        for name in list(self.queue_view.names):
            if not free or not may_start():
                break
            peeked = queue.read(self.layout, name)
            if peeked is None:
                self.queue_view.discard(name)   # another node took it
                continue
            choice = self.slot_for(peeked.config, free)
            if choice is None:
                self.memory_blocked = True
                break
            state, need = choice
            self.queue_view.discard(name)
            if start(name, state, peeked.attempts + 1, need):
                free.remove(state)
