"""RuleVersions on a real Redis: numbering, concurrent publishes, rollback as a new version, seeding once, diffs."""

from __future__ import annotations

import threading

import pytest
import redis as redis_lib

from hublink.config.rule_versions import RulesRejected
from hublink.intake.rule_versions import RuleVersions
from hublink.store.connections import text as as_text
from hublink.store.keys import Keys

pytestmark = pytest.mark.integration

V1 = """\
rules:
  - name: deal-contact
    source: hubspot
    associations:
      - from: {objectType: deals, id: objectId}
        to: {objectType: contacts, id: contactId}
"""
V2 = V1.replace("contactId", "primaryContact")
BROKEN = V1.replace("source: hubspot", "source: telepathy")


@pytest.fixture
def store(redis_client: redis_lib.Redis) -> RuleVersions:
    """The versions of a clean database under the default prefix."""
    return RuleVersions(redis_client, Keys())


class TestNumbering:
    """Versions are numbered 1, 2, 3... and the newest is published."""

    def test_nothing_published_at_first(self, store: RuleVersions) -> None:
        """A fresh store publishes nothing and lists nothing."""
        assert store.published() is None
        assert store.published_version() == 0
        assert store.versions() == []
        assert store.get(1) is None

    def test_each_publish_takes_the_next_number(self, store: RuleVersions) -> None:
        """Two publishes make versions 1 and 2; the second is published, and both are kept with their authors."""
        first = store.publish(V1, author="ana", comment="first")
        second = store.publish(V2, author="bo", comment="second")
        assert (first.version, second.version) == (1, 2)
        published = store.published()
        assert published is not None and published.version == 2 and published.text == V2
        listed = [(v.version, v.author, v.comment) for v in store.versions()]
        assert listed == [(2, "bo", "second"), (1, "ana", "first")]
        assert all(v.text == "" for v in store.versions())  # listings leave the text out

    def test_keys_are_those_of_the_map(self, store: RuleVersions, redis_client: redis_lib.Redis) -> None:
        """A publish writes rules:v:1 and rules:published under the prefix, nothing else."""
        store.publish(V1, author="ana", comment="")
        assert sorted(as_text(k) for k in redis_client.keys("*")) == ["hl:rules:published", "hl:rules:v:1"]

    def test_a_rejected_publish_stores_nothing(self, store: RuleVersions, redis_client: redis_lib.Redis) -> None:
        """Rules with problems are refused with each problem's line, and no version is written."""
        with pytest.raises(RulesRejected) as caught:
            store.publish(BROKEN, author="ana", comment="")
        assert [p.line for p in caught.value.problems] == [3]
        assert "source" in caught.value.problems[0].message
        assert redis_client.keys("*") == []

    def test_concurrent_publishes_get_distinct_numbers(self, redis_url: str) -> None:
        """Eight threads publishing at once get versions 1..8, each diffed against the version just before it."""
        texts = [V1.replace("deal-contact", f"rule-{n}") for n in range(8)]
        got: list[int] = []
        barrier = threading.Barrier(len(texts))

        def publish(text: str) -> None:
            """Publish ``text`` on a client of its own, all threads at once."""
            client = redis_lib.Redis.from_url(redis_url)
            barrier.wait()
            got.append(RuleVersions(client, Keys()).publish(text, author="t", comment="").version)
            client.close()

        threads = [threading.Thread(target=publish, args=(t,)) for t in texts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(got) == list(range(1, 9))
        store = RuleVersions(redis_lib.Redis.from_url(redis_url), Keys())
        for number in range(2, 9):
            before, version = store.get(number - 1), store.get(number)
            assert before is not None and version is not None
            removed = [line[1:] for line in version.diff.splitlines() if line.startswith("-") and line[1] != "-"]
            assert removed == [before.text.splitlines()[1]]  # the rule name line of the version before


class TestRollback:
    """A rollback publishes an old text again, as a new version."""

    def test_rollback_makes_a_new_version(self, store: RuleVersions) -> None:
        """Rolling back to v1 after v2 publishes v3 with v1's text and a diff from v2."""
        store.publish(V1, author="ana", comment="")
        store.publish(V2, author="ana", comment="")
        third = store.rollback(1, author="bo", comment="")
        assert third.version == 3 and third.text == V1 and third.comment == "rollback to v1"
        assert "-        to: {objectType: contacts, id: primaryContact}" in third.diff
        published = store.published()
        assert published is not None and published.version == 3

    def test_rollback_to_an_unknown_version_is_a_key_error(self, store: RuleVersions) -> None:
        """There is no version 9 to roll back to: KeyError, nothing written."""
        store.publish(V1, author="ana", comment="")
        with pytest.raises(KeyError):
            store.rollback(9, author="bo", comment="")
        assert store.published_version() == 1


class TestSeed:
    """The rules file seeds version 1, once."""

    def test_seed_writes_version_one_once(self, store: RuleVersions) -> None:
        """The first seed writes v1; a second (another process starting) finds it and writes nothing."""
        seeded = store.seed(V1, author="file")
        assert seeded is not None and seeded.version == 1 and seeded.diff == ""
        assert store.seed(V2, author="file") is None
        published = store.published()
        assert published is not None and published.text == V1

    def test_seed_after_a_publish_does_nothing(self, store: RuleVersions) -> None:
        """Once operators have published, the file seeds nothing: Redis holds the rules."""
        store.publish(V2, author="ana", comment="")
        assert store.seed(V1, author="file") is None
        published = store.published()
        assert published is not None and published.text == V2

    def test_concurrent_seeds_write_one_version(self, redis_url: str) -> None:
        """Six processes starting at once: exactly one seeds."""
        results: list[object] = []
        barrier = threading.Barrier(6)

        def seed() -> None:
            """Seed on a client of its own, all threads at once."""
            client = redis_lib.Redis.from_url(redis_url)
            barrier.wait()
            results.append(RuleVersions(client, Keys()).seed(V1, author="file"))
            client.close()

        threads = [threading.Thread(target=seed) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sum(r is not None for r in results) == 1
        assert RuleVersions(redis_lib.Redis.from_url(redis_url), Keys()).published_version() == 1
