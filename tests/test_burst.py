"""Trend bursts on synthetic mention streams: a burst against a quiet baseline fires once, not
before the threshold; a flat rate never fires; the counts carry over to a new detector."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.stages.burst import BurstConfig, BurstDetector, burst_alert

T0 = datetime(2026, 9, 1, tzinfo=UTC)


def quiet_baseline(d: BurstDetector, entity: str, hours: int = 72, per_hour: int = 1) -> datetime:
    t = T0
    for _ in range(hours):
        for i in range(per_hour):
            assert d.mention(entity, t + timedelta(minutes=i * 60 / per_hour)) is None
        t += timedelta(hours=1)
    return t


def test_burst_fires_once_at_the_threshold_not_before() -> None:
    d = BurstDetector({}, BurstConfig(min_count=10, factor=4.0))
    t = quiet_baseline(d, "org/ecb")
    fired = [d.mention("org/ecb", t + timedelta(minutes=i)) for i in range(30)]
    hits = [i for i, b in enumerate(fired) if b is not None]
    assert hits == [9]  # the tenth mention within the hour: min_count reached, 10 > 4 x expected 1
    burst = fired[9]
    assert burst.entity == "org/ecb" and burst.recent == 10 and burst.expected == 1.0


def test_a_new_entity_needs_history_before_it_can_burst() -> None:
    d = BurstDetector({}, BurstConfig(min_count=5, factor=2.0, min_history_hours=24))
    assert all(d.mention("person/new", T0 + timedelta(minutes=i)) is None for i in range(50))


def test_flat_rate_never_fires() -> None:
    d = BurstDetector({}, BurstConfig(min_count=10, factor=4.0))
    t = T0
    for minute in range(80 * 60):
        if minute % 3 == 0:  # 20 mentions an hour, every hour
            assert d.mention("country/RU", t + timedelta(minutes=minute)) is None


def test_other_entities_do_not_count_and_state_survives_a_restart() -> None:
    counts: dict = {}
    d = BurstDetector(counts, BurstConfig(min_count=5, factor=3.0, min_history_hours=5))
    t = quiet_baseline(d, "asset/btc", hours=10)
    for i in range(4):
        assert d.mention("asset/btc", t + timedelta(minutes=i)) is None
        assert d.mention("asset/eth", t + timedelta(minutes=i)) is None
    restarted = BurstDetector(counts, BurstConfig(min_count=5, factor=3.0, min_history_hours=5))  # recovered
    assert restarted.mention("asset/btc", t + timedelta(minutes=5)) is not None


def test_suppression_and_expiry() -> None:
    counts: dict = {}
    d = BurstDetector(counts, BurstConfig(min_count=3, factor=2.0, suppress_seconds=3600, min_history_hours=1))
    t = quiet_baseline(d, "org/fed", hours=5)
    hits = [d.mention("org/fed", t + timedelta(minutes=i)) for i in range(20)]
    assert sum(h is not None for h in hits) == 1
    later = t + timedelta(hours=2)
    hits = [d.mention("org/fed", later + timedelta(minutes=i)) for i in range(20)]
    assert sum(h is not None for h in hits) == 1  # a new burst after the suppression window
    dropped = d.expire(later + timedelta(days=5))
    assert dropped > 0 and not [k for k in counts if "|m|" in k or "|h|" in k]


def test_burst_alert_id_is_deterministic() -> None:
    d = BurstDetector({}, BurstConfig(min_count=2, factor=1.5, min_history_hours=1))
    t = quiet_baseline(d, "org/imf", hours=3)
    d.mention("org/imf", t)
    burst = d.mention("org/imf", t + timedelta(seconds=30))
    a, b = burst_alert(burst, "high", "IMF", "art-1"), burst_alert(burst, "high", "IMF", "art-1")
    assert a.id == b.id and a.kind == "burst" and a.severity == "high" and "IMF" in a.title


def test_mention_batches_sum_per_entity_and_minute_on_a_stable_partition() -> None:
    from streams.contract.events import Entity, TaggedArticle
    from streams.stages.burst import mention_batches, mention_partition

    def tagged(aid: str, at: datetime, *ids: str) -> TaggedArticle:
        return TaggedArticle.model_construct(id=aid, ingested_at=at, entities=[
            Entity(text=i, label="ORG", id=i, name=i.upper(), count=2, start=0) for i in ids]
            + [Entity(text="Nobody", label="PERSON", start=0)])

    t = datetime(2026, 11, 20, 9, 0, 10, tzinfo=UTC)
    batch = [tagged("a", t, "org/ecb", "country/DE"), tagged("b", t + timedelta(seconds=20), "org/ecb"),
             tagged("c", t + timedelta(minutes=1), "org/ecb")]
    batches = mention_batches(batch, 4)
    flat = [(p, m.entity, m.count, m.article) for p, batch in batches.items() for m in batch.mentions]
    ecb, de = mention_partition("org/ecb", 4), mention_partition("country/DE", 4)
    # same minute summed (the latest article stands for it); the next minute separate; no id, no mention
    assert sorted(flat) == sorted([(ecb, "org/ecb", 4, "b"), (ecb, "org/ecb", 2, "c"), (de, "country/DE", 2, "a")])
