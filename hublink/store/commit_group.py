"""Commit group: requests that write at the same moment share one Redis round trip (group commit).

Intake is one XADD per request, and under load the round trip, not the XADD, is what a request costs: the
client's send, the wait for the socket, the server's read and reply (``make bench``: one raw RPUSH takes
about a third of a bare endpoint's throughput). When several requests of one process write at once, the
first to arrive leads: it sends every command queued by then in one pipeline, hands each caller its own
reply (or its own error), and passes the lead to the first caller that queued during its round trip.
Nobody waits for a timer: alone, a request sends its command at once, as a plain call would; under load a
group forms from whoever queued during the previous round trip. A caller returns only once Redis has
answered its own command, so a 2xx still means the work is stored.

Works with gevent's patched ``threading`` (greenlets, the web process) and with real threads alike.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis import Redis

#: Most commands one round trip carries: beyond it, the next leader takes the rest.
MAX_GROUP = 64


class _Waiter:
    """One caller's command, and what Redis answered to it (a reply, or the error to raise in its caller)."""

    __slots__ = ("args", "done", "error", "lead", "reply")

    def __init__(self, args: Sequence[Any]) -> None:
        self.args = args
        self.done = threading.Event()
        self.lead = False
        self.reply: tuple[Any, Any] = (None, None)
        self.error: BaseException | None = None


class CommitGroup:
    """Runs commands for concurrent callers, one pipelined round trip per group; see the module doc.

    ``trailer`` is a command sent after each group's commands, whose reply every caller of the group gets
    beside its own (``WAIT n ms``: one WAIT covers every write before it).
    """

    def __init__(self, redis: Redis, *, trailer: Sequence[Any] | None = None, max_group: int = MAX_GROUP) -> None:
        self._redis = redis
        self._trailer = tuple(trailer) if trailer else None
        self._max = max(1, max_group)
        self._lock = threading.Lock()
        self._queue: list[_Waiter] = []
        self._leading = False

    @property
    def leading(self) -> bool:
        """True while a round trip is under way."""
        return self._leading

    @property
    def waiting(self) -> int:
        """Callers queued for the next round trip (not counting the one under way)."""
        with self._lock:
            return len(self._queue)

    def execute(self, *args: Any) -> tuple[Any, Any]:
        """Run one command; return its reply and the trailer's (None without one). Raises what Redis raised."""
        me = _Waiter(args)
        with self._lock:
            self._queue.append(me)
            lead = not self._leading
            self._leading = True
        if not lead:
            try:
                me.done.wait()
            except BaseException:  # interrupted while queued (gevent's Timeout, its greenlet killed)
                self._abandon(me)
                raise
        if me.lead or lead:
            self._lead()
        if me.error is not None:
            raise me.error
        return me.reply

    def _lead(self) -> None:
        with self._lock:
            group, self._queue = self._queue[: self._max], self._queue[self._max :]
        try:
            self._send(group)
        except BaseException:
            # The leader was interrupted (gevent's Timeout, its greenlet killed) with the round trip in an
            # unknown state: it raises what interrupted it; the others, whose commands may or may not have
            # reached Redis, a connection error (a 503 at intake), never the leader's own interruption.
            for waiter in group:
                waiter.error = redis.ConnectionError("the round trip carrying this command was interrupted")
            raise
        finally:
            timed_out = next((w.error for w in group if isinstance(w.error, redis.TimeoutError)), None)
            if timed_out is not None:
                # Redis did not answer within its timeout: whoever queued meanwhile would wait a whole timeout
                # more behind it (past HubSpot's 5 s with the default 2 s). They get the same error now,
                # nothing of theirs sent; those arriving later start a new group.
                with self._lock:
                    stranded, self._queue = self._queue, []
                for waiter in stranded:
                    waiter.error = copy.copy(timed_out)
                group = group + stranded
            for waiter in group:
                waiter.done.set()
            self._hand_on()

    def _hand_on(self) -> None:
        """Pass the lead to the first caller still queued, or end leading when nobody is."""
        with self._lock:
            successor = self._queue[0] if self._queue else None
            self._leading = successor is not None
            if successor is not None:
                successor.lead = True  # under the lock: an interrupted caller reads it there (_abandon)
        if successor is not None:
            successor.done.set()

    def _abandon(self, me: _Waiter) -> None:
        """A queued caller that stops waiting: its command is never sent, and a lead it was given goes on."""
        with self._lock:
            if me not in self._queue:
                return  # already in a round trip under way: its leader finishes it, nobody is waiting for it
            self._queue.remove(me)
            promoted = me.lead
        if promoted:
            self._hand_on()

    def _send(self, group: list[_Waiter]) -> None:
        if len(group) == 1 and self._trailer is None:
            try:
                group[0].reply = (self._redis.execute_command(*group[0].args), None)  # type: ignore[no-untyped-call]
            except redis.RedisError as exc:  # its caller raises it, in its own context
                group[0].error = exc
            return
        pipe = self._redis.pipeline(transaction=False)
        for waiter in group:
            pipe.execute_command(*waiter.args)  # type: ignore[no-untyped-call]
        if self._trailer is not None:
            pipe.execute_command(*self._trailer)  # type: ignore[no-untyped-call]
        try:
            replies = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:  # the round trip failed as a whole: each caller raises it (its own copy)
            for waiter in group:
                waiter.error = copy.copy(exc)
            return
        trailer = replies[-1] if self._trailer is not None else None
        if isinstance(trailer, Exception):
            for waiter in group:
                waiter.error = copy.copy(trailer)
            return
        for waiter, reply in zip(group, replies, strict=False):
            if isinstance(reply, Exception):
                waiter.error = reply
            else:
                waiter.reply = (reply, trailer)
