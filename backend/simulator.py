"""Live demo traffic: sessions that move through their states, stream replies and
run terminals, so that a newcomer sees events the moment the page opens."""

from __future__ import annotations

import asyncio
import logging
import random

from .models import Session, SessionState, TerminalStatus
from .service import SessionService

log = logging.getLogger(__name__)

TITLES = [
    "Fix flaky login test",
    "Refactor billing module",
    "Write release notes",
    "Investigate memory spike",
    "Add dark mode",
    "Migrate to pydantic v2",
    "Speed up CI",
    "Triage open issues",
]
REPLY = (
    "Let me look at this. I read the relevant files, ran the tests and found the cause: "
    "a race between the snapshot and the first event. Registering the subscription before "
    "reading state fixes it, and a test now covers the interleaving."
)
MAX_SESSIONS = 6


class Simulator:
    def __init__(self, service: SessionService, *, tick_s: float = 1.0, seed: int | None = None) -> None:
        self._service = service
        self._tick_s = tick_s
        self._rng = random.Random(seed)

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:  # the demo must keep going; the error is logged
                log.exception("simulator step failed")
            await asyncio.sleep(self._tick_s * self._rng.uniform(0.5, 1.5))

    async def step(self) -> None:
        sessions = self._service.store.sessions()
        if len(sessions) < 3 or (len(sessions) < MAX_SESSIONS and self._rng.random() < 0.2):
            await self._service.create_session(self._rng.choice(TITLES))
            return
        roll = self._rng.random()
        if roll < 0.45:
            await self._converse(self._rng.choice(sessions).id)
        elif roll < 0.7:
            await self._terminal(self._rng.choice(sessions).id)
        elif roll < 0.9:
            state: SessionState = self._rng.choice(["idle", "waiting", "error", "done"])
            await self._service.update_session(self._rng.choice(sessions).id, state=state)
        else:
            await self._retire(sessions)

    async def _converse(self, session_id: str) -> None:
        service = self._service
        await service.update_session(session_id, state="running")
        await service.add_message(session_id, "user", "Please take a look at the failing build.")
        reply = await service.add_message(session_id, "assistant", "", streaming=True)
        if reply is None:
            return
        for token in REPLY.split(" "):
            if not service.stream_text(session_id, reply.id, token + " "):
                return
            await asyncio.sleep(self._tick_s * 0.03)
        await service.end_message(session_id, reply.id)
        await service.update_session(session_id, state=self._rng.choice(["idle", "waiting", "done"]))

    async def _terminal(self, session_id: str) -> None:
        service = self._service
        terminals = service.store.terminals()
        finished = [t for t in terminals if t.status == "exited"]
        if finished and self._rng.random() < 0.5:
            await service.remove_terminal(finished[0].id)
            return
        running = [t for t in terminals if t.status != "exited"]
        if running and self._rng.random() < 0.6:
            t = self._rng.choice(running)
            status: TerminalStatus
            if t.status == "starting":
                status, code = "running", None
            else:
                status, code = "exited", self._rng.choice([0, 0, 1])
            await service.put_terminal(
                t.name, status, terminal_id=t.id, session_id=t.session_id, exit_code=code
            )
        else:
            name = self._rng.choice(["pytest", "npm run build", "git bisect", "make lint"])
            await service.put_terminal(name, "starting", session_id=session_id)

    async def _retire(self, sessions: list[Session]) -> None:
        done = [s for s in sessions if s.state == "done"]
        if done and len(sessions) > 3:
            await self._service.delete_session(done[0].id)
