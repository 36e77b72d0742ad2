"""One object per worker slot: what runs there, its memory reservation, and where its time goes.

The slot table keeps, for each slot, its running experiment (or none), the memory estimate reserved
for it in the packing ledger, and its clock (busy / idle / idle while work waited), so that
starting and ending an experiment update all of them together and nothing is kept in step by hand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from orze.daemon.accounting import SlotClock
from orze.daemon.packing import MemoryLedger
from orze.daemon.slots import Slot
from orze.daemon.supervisor import Running


@dataclass
class SlotState:
    slot: Slot
    clock: SlotClock
    running: Running | None = None
    estimate: tuple[float, str] | None = None   # (MiB reserved, basis) while running

    @property
    def index(self) -> int:
        return self.slot.index


@dataclass
class SlotTable:
    states: list[SlotState]
    ledger: MemoryLedger
    by_index: dict[int, SlotState] = field(init=False)

    def __post_init__(self) -> None:
        self.by_index = {s.index: s for s in self.states}

    @classmethod
    def create(cls, slots: list[Slot], ledger: MemoryLedger, now: float | None = None) -> "SlotTable":
        now = time.time() if now is None else now
        return cls([SlotState(s, SlotClock(now)) for s in slots], ledger)

    def running(self) -> list[Running]:
        return [s.running for s in self.states if s.running is not None]

    def idle(self) -> list[SlotState]:
        return [s for s in self.states if s.running is None]

    def occupy(self, state: SlotState, r: Running, estimate: tuple[float, str], claimed_at: float) -> None:
        state.running, state.estimate = r, estimate
        self.ledger.reserve(state.slot.device, state.index, estimate[0])
        state.clock.start(claimed_at)

    def vacate(self, state: SlotState, work_waiting: bool) -> tuple[float, str] | None:
        """The slot's experiment ended, however it ended; returns the estimate it had reserved."""
        now = time.time()
        estimate = state.estimate
        state.running, state.estimate = None, None
        state.clock.stop(now)
        self.ledger.release(state.slot.device, state.index)
        state.clock.work_waiting(now, work_waiting)
        return estimate

    def note_waiting(self, states: list[SlotState], work_waiting: bool) -> None:
        now = time.time()
        for s in states:
            s.clock.work_waiting(now, work_waiting)
