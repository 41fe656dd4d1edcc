"""Live demo traffic: sessions that move through their states, stream replies and
run terminals, so that a newcomer sees events the moment the page opens.

It runs for as long as the server does, so everything it creates has an end: a
session takes at most `MAX_TURNS` conversations before it is done, and done sessions
are retired (deleting a session removes its messages and terminals); a terminal goes
starting, running, exited, removed; at most `MAX_SESSIONS` sessions and `MAX_TERMINALS`
terminals, `TERMINALS_PER_SESSION` of a session. After an hour the store looks as it does
after a minute.
"""

from __future__ import annotations

import asyncio
import logging
import random

from .models import Session, SessionState, Terminal
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
PROMPTS = [
    "Please take a look at the failing build.",
    "Can you add a test for the empty case?",
    "Why did p99 latency go up since Tuesday?",
    "Rename the config flag and update the docs.",
    "Is the migration reversible?",
    "Split this function; it does three things.",
]
SENTENCES = [
    "Let me look at this.",
    "I read the relevant files and ran the tests.",
    "The cause is a race between the snapshot and the first event.",
    "Registering the subscription before reading state fixes it.",
    "A test now covers the interleaving.",
    "The flaky part was a 50 ms timeout on a loaded runner.",
    "The public API stays as it was.",
    "The diff is small: two functions and their tests.",
    "CI is green on every supported Python.",
    "I added a line to the changelog.",
]
COMMANDS = ["pytest", "npm run build", "git bisect", "make lint"]
MIN_SESSIONS = 3
MAX_SESSIONS = 6
#: Conversations (a prompt and its reply) per session; then it is done.
MAX_TURNS = 6
MAX_TERMINALS = 4
TERMINALS_PER_SESSION = 2


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
        sessions = await self._service.store.sessions()
        if len(sessions) < MIN_SESSIONS or (len(sessions) < MAX_SESSIONS and self._rng.random() < 0.2):
            await self._service.create_session(self._rng.choice(TITLES))
            return
        session = self._rng.choice(sessions)
        roll = self._rng.random()
        if roll < 0.45:
            await self._converse(session.id)
        elif roll < 0.7:
            await self._terminal(session.id)
        elif roll < 0.9:
            state: SessionState = self._rng.choice(["idle", "waiting", "error", "done"])
            await self._service.update_session(session.id, state=state)
        else:
            await self._retire(sessions)

    async def _converse(self, session_id: str) -> None:
        service = self._service
        if len(await service.store.messages(session_id)) >= 2 * MAX_TURNS:
            await service.update_session(session_id, state="done")
            return
        await service.update_session(session_id, state="running")
        await service.add_message(session_id, "user", self._rng.choice(PROMPTS))
        reply = await service.add_message(session_id, "assistant", "", streaming=True)
        if reply is None:
            return
        text = " ".join(self._rng.sample(SENTENCES, self._rng.randint(2, 4)))
        for token in text.split(" "):
            if not await service.stream_text(session_id, reply.id, token + " "):
                return
            await asyncio.sleep(self._tick_s * 0.03)
        await service.end_message(session_id, reply.id)
        await service.update_session(session_id, state=self._rng.choice(["idle", "waiting", "done"]))

    async def _terminal(self, session_id: str) -> None:
        terminals = await self._service.store.terminals()
        mine = [t for t in terminals if t.session_id == session_id]
        room = len(terminals) < MAX_TERMINALS and len(mine) < TERMINALS_PER_SESSION
        if room and (not mine or self._rng.random() < 0.3):
            await self._service.put_terminal(self._rng.choice(COMMANDS), "starting", session_id=session_id)
        elif mine or terminals:
            await self._advance(self._rng.choice(mine or terminals))

    async def _advance(self, t: Terminal) -> None:
        """One step of a terminal's life: starting, running, exited, removed."""
        service = self._service
        if t.status == "exited":
            await service.remove_terminal(t.id)
        elif t.status == "starting":
            await service.put_terminal(t.name, "running", terminal_id=t.id, session_id=t.session_id)
        else:
            code = self._rng.choice([0, 0, 1])
            await service.put_terminal(
                t.name, "exited", terminal_id=t.id, session_id=t.session_id, exit_code=code
            )

    async def _retire(self, sessions: list[Session]) -> None:
        done = [s for s in sessions if s.state == "done"]
        if done and len(sessions) > MIN_SESSIONS:
            await self._service.delete_session(done[0].id)
