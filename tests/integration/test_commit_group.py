"""Commit group on a real Redis: callers who write at the same moment share a round trip, each gets its own answer.

The web process stores every request with one XADD through a :class:`CommitGroup`; these tests hold a
round trip open (a BLPOP) so that callers queue behind it, then count the round trips and check what each
caller got back.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from hublink.domain.errors import StoreFullError
from hublink.store.commit_group import CommitGroup
from hublink.store.connections import store_error
from tests.support.processes import REPO, RedisServer, python, wait_for

pytestmark = pytest.mark.integration


class CountingRedis(redis_lib.Redis):
    """A real client that counts the pipelines it sends (each is one round trip)."""

    pipelines = 0

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        """Count, then build the pipeline as redis-py does."""
        self.pipelines += 1
        return super().pipeline(transaction=transaction, shard_hint=shard_hint)


@pytest.fixture
def client(redis_url: str) -> Iterator[CountingRedis]:
    """The group's connection (2 s to answer, as intake's default)."""
    connection = CountingRedis(connection_pool=redis_lib.ConnectionPool.from_url(redis_url, socket_timeout=2))
    yield connection
    connection.close()


class Callers:
    """Threads each running one command through the group; their replies and errors by name."""

    def __init__(self, group: CommitGroup) -> None:
        self.group = group
        self.replies: dict[str, Any] = {}
        self.errors: dict[str, BaseException] = {}
        self.threads: list[threading.Thread] = []

    def start(self, name: str, *command: Any) -> None:
        """Start a thread named ``name`` that runs ``command`` through the group."""

        def run() -> None:
            """Record the caller's reply or error."""
            try:
                self.replies[name] = self.group.execute(*command)
            except redis_lib.RedisError as exc:
                self.errors[name] = exc

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        """Wait for every caller (each must have its answer within 10 s)."""
        for thread in self.threads:
            thread.join(timeout=10)
            assert not thread.is_alive(), f"{thread.name} never got its answer"


def hold_round_trip(group: CommitGroup, callers: Callers, key: str, *, block_s: int = 5) -> None:
    """Start a caller whose BLPOP keeps the group's round trip open until ``key`` gets an item."""
    callers.start("holder", "BLPOP", key, block_s)
    wait_for(lambda: group.leading, timeout=5, what="the holder's round trip")


def test_a_caller_alone_sends_its_command_at_once_as_a_plain_call(client: CountingRedis) -> None:
    """No timer, no pipeline: one caller is one command, and gets its reply."""
    group = CommitGroup(client)
    assert group.execute("INCR", "cg:alone") == (1, None)
    assert client.pipelines == 0
    assert client.get("cg:alone") == b"1"


def test_callers_who_queue_during_a_round_trip_share_the_next_one(
    client: CountingRedis, redis_client: redis_lib.Redis
) -> None:
    """Ten callers queued behind a held round trip go in one pipeline, and each gets its own reply, in order."""
    group = CommitGroup(client)
    callers = Callers(group)
    hold_round_trip(group, callers, "cg:gate")
    for i in range(10):
        callers.start(f"c{i}", "RPUSH", "cg:list", f"item-{i}")
    wait_for(lambda: group.waiting == 10, timeout=5, what="ten queued callers")
    redis_client.rpush("cg:gate", "go")
    callers.join()

    assert callers.errors == {}
    assert callers.replies["holder"] == ((b"cg:gate", b"go"), None)
    assert client.pipelines == 1
    lengths = {callers.replies[f"c{i}"][0] for i in range(10)}
    assert lengths == set(range(1, 11)), "each caller got the reply to its own RPUSH"
    stored = redis_client.lrange("cg:list", 0, -1)
    assert sorted(stored) == sorted(f"item-{i}".encode() for i in range(10))
    assert not group.leading and group.waiting == 0


def test_a_group_never_carries_more_than_its_maximum(client: CountingRedis, redis_client: redis_lib.Redis) -> None:
    """Ten queued callers with a maximum of four: three round trips, every command stored once."""
    group = CommitGroup(client, max_group=4)
    callers = Callers(group)
    hold_round_trip(group, callers, "cg:gate")
    for i in range(10):
        callers.start(f"c{i}", "SADD", "cg:set", str(i))
    wait_for(lambda: group.waiting == 10, timeout=5, what="ten queued callers")
    redis_client.rpush("cg:gate", "go")
    callers.join()

    assert callers.errors == {}
    assert client.pipelines == 3
    assert redis_client.scard("cg:set") == 10


def test_an_error_is_the_callers_own(client: CountingRedis, redis_client: redis_lib.Redis) -> None:
    """A command Redis refuses fails its caller only; the others in the same round trip get their replies."""
    redis_client.rpush("cg:a-list", "x")
    group = CommitGroup(client)
    callers = Callers(group)
    hold_round_trip(group, callers, "cg:gate")
    callers.start("good-1", "INCR", "cg:n")
    callers.start("wrong-type", "INCR", "cg:a-list")
    callers.start("good-2", "INCR", "cg:n")
    wait_for(lambda: group.waiting == 3, timeout=5, what="three queued callers")
    redis_client.rpush("cg:gate", "go")
    callers.join()

    assert set(callers.errors) == {"wrong-type"}
    assert isinstance(callers.errors["wrong-type"], redis_lib.ResponseError)
    assert {callers.replies["good-1"][0], callers.replies["good-2"][0]} == {1, 2}
    assert client.pipelines == 1


def test_a_round_trip_that_times_out_fails_those_queued_behind_it_unsent(
    redis_url: str, redis_client: redis_lib.Redis
) -> None:
    """Redis silent past the timeout: the queued callers fail at once with it, their commands never sent."""
    slow = CountingRedis(connection_pool=redis_lib.ConnectionPool.from_url(redis_url, socket_timeout=0.5))
    group = CommitGroup(slow)
    callers = Callers(group)
    callers.start("holder", "BLPOP", "cg:never", 0)  # blocks until the client's timeout
    wait_for(lambda: group.leading, timeout=5, what="the holder's round trip")
    for i in range(3):
        callers.start(f"c{i}", "SET", f"cg:stranded:{i}", "1")
    callers.join()

    assert set(callers.errors) == {"holder", "c0", "c1", "c2"}
    assert all(isinstance(error, redis_lib.TimeoutError) for error in callers.errors.values())
    assert redis_client.exists("cg:stranded:0", "cg:stranded:1", "cg:stranded:2") == 0
    assert not group.leading
    assert group.execute("SET", "cg:after", "1") == (True, None), "the next caller starts a new round trip"
    slow.close()


def test_the_trailer_closes_every_group_and_each_caller_gets_its_reply(
    client: CountingRedis, redis_client: redis_lib.Redis
) -> None:
    """With a trailer (WAIT for replicas at intake) each caller gets its reply and the trailer's, alone or grouped."""
    group = CommitGroup(client, trailer=("WAIT", 0, 0))
    assert group.execute("INCR", "cg:t") == (1, 0)
    callers = Callers(group)
    hold_round_trip(group, callers, "cg:gate")
    callers.start("a", "INCR", "cg:t")
    callers.start("b", "INCR", "cg:t")
    wait_for(lambda: group.waiting == 2, timeout=5, what="two queued callers")
    redis_client.rpush("cg:gate", "go")
    callers.join()

    assert callers.errors == {}
    assert sorted(callers.replies[name] for name in ("a", "b")) == [(2, 0), (3, 0)]


def test_a_full_redis_refuses_each_grouped_write_as_full(tmp_path: Path) -> None:
    """At maxmemory (noeviction) every write of a group fails its own caller with OOM, typed StoreFullError (503)."""
    server = RedisServer(tmp_path / "full").start()
    try:
        admin = redis_lib.Redis(port=server.port)
        group = CommitGroup(redis_lib.Redis(port=server.port, socket_timeout=5))
        callers = Callers(group)
        hold_round_trip(group, callers, "cg:gate")
        for i in range(3):
            callers.start(f"c{i}", "XADD", "cg:inbox", "*", "n", str(i))
        wait_for(lambda: group.waiting == 3, timeout=5, what="three queued callers")
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        # A push would be refused now (OOM): end the holder's BLPOP the way an administrator would.
        holder = next(c["id"] for c in admin.client_list() if c["cmd"] == "blpop")
        admin.client_unblock(int(holder))
        callers.join()

        assert callers.replies["holder"] == (None, None)
        assert set(callers.errors) == {"c0", "c1", "c2"}
        assert all(isinstance(store_error(error), StoreFullError) for error in callers.errors.values())
        assert admin.exists("cg:inbox") == 0
    finally:
        server.stop()


#: Run under gevent, as the web process runs: a follower whose greenlet is killed while it waits.
GEVENT_SCRIPT = """
from gevent import monkey

monkey.patch_all()

import json
import sys
import time

import gevent
import redis

from hublink.store.commit_group import CommitGroup


def until(check, what):
    deadline = time.monotonic() + 5
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        gevent.sleep(0.001)


admin = redis.Redis.from_url(sys.argv[1])
group = CommitGroup(redis.Redis.from_url(sys.argv[1], socket_timeout=5))
holder = gevent.spawn(group.execute, "BLPOP", "cg:gate", 5)
until(lambda: group.leading, "the holder's round trip")
followers = [gevent.spawn(group.execute, "SET", f"cg:g:{i}", "1") for i in range(3)]
until(lambda: group.waiting == 3, "three queued followers")
followers[0].kill()
queued_after_kill = group.waiting
admin.rpush("cg:gate", "go")
gevent.joinall([holder, *followers], timeout=10)
print(json.dumps({
    "queued_after_kill": queued_after_kill,
    "stored": [admin.exists(f"cg:g:{i}") for i in range(3)],
    "replies": [list(f.value) if isinstance(f.value, tuple) else None for f in followers],
    "leading": group.leading,
    "after": group.execute("SET", "cg:after", "1")[0],
}))
"""


def test_a_caller_killed_while_queued_is_never_sent_and_the_group_goes_on(redis_url: str) -> None:
    """Under gevent: a follower's greenlet killed while it waits leaves the queue (its command never sent); the
    others get their replies and the group does not stay stuck leading."""
    result = subprocess.run(
        [python(), "-c", GEVENT_SCRIPT, redis_url], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["queued_after_kill"] == 2
    assert seen["stored"] == [0, 1, 1]
    assert seen["replies"] == [None, [True, None], [True, None]]
    assert seen["leading"] is False
    assert seen["after"] is True
