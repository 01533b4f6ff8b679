"""The SLO bucket store on real SQLite and PostgreSQL: window sums from running totals
against a brute-force sum over the same buckets (prorated edges, gaps, older buckets
added before the oldest, trimmed history), idempotent and concurrent appends."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest

from alert_jobs.families.slo.check import Bucket, Counts
from alert_jobs.families.slo.store import SloBucketStore
from alert_jobs.store import Timeline

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)


def brute(buckets: list[Bucket], start: datetime, end: datetime) -> tuple[float, float, float]:
    """Good, total and covered seconds in ``[start, end)``, each bucket counted by the
    share of it inside the window (events spread evenly within a bucket)."""
    good = total = covered = 0.0
    for b in buckets:
        lo, hi = max(b.start, start), min(b.end, end)
        if hi <= lo:
            continue
        share = (hi - lo) / (b.end - b.start)
        if b.has_data:
            good += b.good * share
            total += b.total * share
            covered += (hi - lo).total_seconds()
    return good, total, covered


def random_buckets(rng: random.Random, start: datetime, n: int, *, step: timedelta = MIN
                   ) -> list[Bucket]:
    """``n`` buckets from ``start``: some missing (a hole), some without data, a few
    coarse (an hour, as a backfill reads old history), traffic of 0 to 500 per bucket."""
    out, at = [], start
    for _ in range(n):
        length = timedelta(hours=1) if rng.random() < 0.05 else step
        if rng.random() < 0.05:  # nothing stored here at all
            at += length
            continue
        if rng.random() < 0.05:  # the source had nothing for it (stored as such)
            out.append(Bucket(at, at + length, 0.0, 0.0, has_data=False))
        else:
            total = float(rng.choice([0, rng.randint(1, 500)]))
            out.append(Bucket(at, at + length, float(rng.randint(0, int(total))), total))
        at += length
    return out


def assert_counts(got: Counts, want: tuple[float, float, float]) -> None:
    assert got.good == pytest.approx(want[0], abs=1e-6)
    assert got.total == pytest.approx(want[1], abs=1e-6)
    assert got.covered.total_seconds() == pytest.approx(want[2], abs=1e-6)


def test_window_sums_match_a_brute_force_sum_over_random_buckets(db_url: str) -> None:
    rng = random.Random(13)
    store = SloBucketStore(Timeline(db_url))
    buckets = random_buckets(rng, T0, 1500)
    assert store.append("checkout", buckets) == len(buckets)
    newest = buckets[-1].end
    spans = [timedelta(minutes=5), timedelta(minutes=30), timedelta(minutes=37, seconds=20),
             timedelta(hours=1), timedelta(hours=6), timedelta(hours=13, minutes=7),
             timedelta(days=3), timedelta(days=30)]
    got = store.window_counts("checkout", spans)
    assert list(got) == spans
    for span in spans:
        assert got[span].span == span
        assert_counts(got[span], brute(buckets, newest - span, newest))
    # At a time that is not a bucket edge (prorated at both ends), and past the newest
    # bucket (the part after it has no data).
    for end in (newest - timedelta(hours=2, seconds=20), newest + timedelta(minutes=10)):
        got = store.window_counts("checkout", spans, end=end)
        for span in spans:
            assert_counts(got[span], brute(buckets, end - span, end))
    # Another rule's buckets are not counted, and a rule without buckets counts nothing.
    store.append("search", [Bucket(newest - MIN, newest, 5, 10)])
    assert_counts(store.window_counts("checkout", [MIN])[MIN],
                  brute(buckets, newest - MIN, newest))
    empty = store.window_counts("nothing", [MIN])[MIN]
    assert (empty.good, empty.total, empty.covered) == (0, 0, timedelta(0))


def test_older_buckets_added_before_the_oldest_and_trimmed_history_keep_sums_right(
        db_url: str) -> None:
    """A backfill reads the newest buckets first and adds older ones in front; trimming
    old rows leaves the running totals of the rest meaningful."""
    rng = random.Random(7)
    store = SloBucketStore(Timeline(db_url))
    buckets = random_buckets(rng, T0, 900)
    recent, older = buckets[600:], buckets[:600]
    assert store.append("checkout", recent) == len(recent)
    for chunk_end in range(600, 0, -100):  # newest chunk first, as a backfill does
        chunk = older[max(0, chunk_end - 100):chunk_end]
        assert store.prepend("checkout", chunk) == len(chunk)
    assert store.prepend("checkout", older[-50:]) == 0  # already there
    extent = store.extent("checkout")
    assert extent is not None
    assert (extent.first_start, extent.last_end) == (buckets[0].start, buckets[-1].end)
    newest = buckets[-1].end
    spans = [timedelta(minutes=5), timedelta(hours=2), timedelta(hours=9), timedelta(days=2)]
    got = store.window_counts("checkout", spans)
    for span in spans:
        assert_counts(got[span], brute(buckets, newest - span, newest))

    cut = buckets[400].end
    deleted = store.trim("checkout", cut)
    assert deleted == sum(1 for b in buckets if b.end < cut)
    kept = [b for b in buckets if b.end >= cut]
    assert store.series("checkout", T0 - timedelta(days=1), newest) == kept
    got = store.window_counts("checkout", spans)
    for span in spans:  # windows reaching before the trim count only what is kept
        assert_counts(got[span], brute(kept, newest - span, newest))
    # More appends after trimming go on from the newest running totals.
    later = [Bucket(newest + i * MIN, newest + (i + 1) * MIN, 8, 10) for i in range(5)]
    assert store.append("checkout", later) == 5
    got = store.window_counts("checkout", [timedelta(hours=1)])[timedelta(hours=1)]
    assert_counts(got, brute(kept + later, later[-1].end - timedelta(hours=1), later[-1].end))
    # The newest bucket is never trimmed: it says where the next run goes on.
    store.trim("checkout", later[-1].end + timedelta(days=1))
    assert store.last_end("checkout") == later[-1].end


def test_prepend_to_nothing_is_an_append(sqlite_url: str) -> None:
    store = SloBucketStore(Timeline(sqlite_url))
    buckets = [Bucket(T0 + i * MIN, T0 + (i + 1) * MIN, 9, 10) for i in range(3)]
    assert store.prepend("r", buckets) == 3
    assert store.last_end("r") == T0 + 3 * MIN
    assert_counts(store.window_counts("r", [3 * MIN])[3 * MIN], (27, 30, 180))


def test_append_is_idempotent_and_skips_what_overlaps(db_url: str) -> None:
    store = SloBucketStore(Timeline(db_url))
    first = [Bucket(T0 + i * MIN, T0 + (i + 1) * MIN, 90, 100) for i in range(10)]
    assert store.last_end("checkout") is None
    assert store.append("checkout", first, run_id="run-1") == 10
    assert store.append("checkout", first, run_id="run-2") == 0
    # A later read that overlaps the stored ones adds only the new buckets.
    more = [Bucket(T0 + i * MIN, T0 + (i + 1) * MIN, 50, 100) for i in range(8, 12)]
    assert store.append("checkout", more) == 2
    # A coarser bucket that starts inside stored time is not counted twice.
    assert store.append("checkout", [Bucket(T0 + 11 * MIN, T0 + 71 * MIN, 1, 1)]) == 0
    assert store.last_end("checkout") == T0 + 12 * MIN
    got = store.window_counts("checkout", [timedelta(minutes=12)])[timedelta(minutes=12)]
    assert (got.good, got.total) == (10 * 90 + 2 * 50, 1200)
    assert got.coverage == 1.0
    assert len(store.series("checkout", T0, T0 + timedelta(hours=1))) == 12


def test_a_gap_is_not_zero_traffic(sqlite_url: str) -> None:
    """A bucket the source had nothing for adds no coverage; zero traffic does."""
    store = SloBucketStore(Timeline(sqlite_url))
    store.append("r", [Bucket(T0, T0 + MIN, 0, 0), Bucket(T0 + MIN, T0 + 2 * MIN, 0, 0,
                                                          has_data=False)])
    got = store.window_counts("r", [2 * MIN])[2 * MIN]
    assert got.total == 0 and got.covered == MIN and got.coverage == 0.5


def test_naive_times_are_refused_with_a_reason(sqlite_url: str) -> None:
    naive = T0.replace(tzinfo=None)
    store = SloBucketStore(Timeline(sqlite_url))
    for write in (store.append, store.prepend):
        with pytest.raises(ValueError, match="need aware UTC times"):
            write("r", [Bucket(naive, naive + MIN, 1, 1)])
    assert store.last_end("r") is None


def test_concurrent_appends_count_each_bucket_once(db_url: str) -> None:
    """Eight writers (a schedule tick and manual runs) append the same and overlapping
    buckets at once: every bucket is stored once and the totals are right."""
    timeline = Timeline(db_url)
    timeline.upgrade()
    store = SloBucketStore(timeline)
    buckets = [Bucket(T0 + i * MIN, T0 + (i + 1) * MIN, i % 7, 10) for i in range(240)]
    barrier = threading.Barrier(8)
    added: list[int] = []
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            barrier.wait()
            n = 0
            for at in range(0, 240, 20 + k):  # chunks of different sizes per writer
                n += store.append("checkout", buckets[at:at + 20 + k], run_id=f"w{k}")
            added.append(n)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sum(added) == 240
    got = store.window_counts("checkout", [timedelta(hours=4)])[timedelta(hours=4)]
    assert (got.good, got.total) == (sum(i % 7 for i in range(240)), 2400)
    assert store.series("checkout", T0, T0 + timedelta(hours=4)) == buckets
