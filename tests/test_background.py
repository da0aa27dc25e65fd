"""fileio.background: a producer thread, a bounded queue, a stop, its error in the consumer."""
import threading
import time

import pytest

from fileio.background import Background


def test_items_arrive_in_order_and_the_thread_ends():
    with Background(iter(range(50)), size=3) as ahead:
        assert list(ahead) == list(range(50))
    assert not ahead._thread.is_alive()


def test_the_producer_is_never_more_than_size_items_ahead():
    made = []

    def producer():
        for i in range(100):
            made.append(i)
            yield i

    with Background(producer(), size=4) as ahead:
        items = iter(ahead)
        assert next(items) == 0
        time.sleep(0.3)                           # time enough to run far ahead
        # One taken, 4 waiting in the queue, one made and waiting to be put.
        assert len(made) <= 1 + 4 + 1


def test_the_producers_error_is_raised_after_the_items_before_it():
    def producer():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with Background(producer(), size=1) as ahead, pytest.raises(OSError, match="disk gone"):
        for item in ahead:
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_the_producer():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    before = threading.active_count()
    with Background(endless(), size=2) as ahead:
        for item in ahead:
            if item == 5:
                break
    assert closed.wait(2.0)                       # the generator was closed in its thread
    assert threading.active_count() == before


def test_on_start_runs_in_the_producers_thread():
    seen = []
    with Background(iter([1]), on_start=lambda: seen.append(threading.get_ident())) as ahead:
        assert list(ahead) == [1]
    assert seen and seen[0] != threading.get_ident()
