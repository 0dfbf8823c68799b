"""SampleRing: lossless SPSC transfer, overflow policy, counters."""

import threading
import time

import numpy as np
import pytest

import rtclassify


def test_capacity_rounds_up_to_power_of_two():
    assert rtclassify.SampleRing(1000).capacity == 1024
    assert rtclassify.SampleRing(1024).capacity == 1024
    for bad in (0, -1, 2**31):
        with pytest.raises((ValueError, TypeError)):
            rtclassify.SampleRing(bad)


def test_fifo_order_and_wraparound():
    ring = rtclassify.SampleRing(8)
    out = []
    x = np.arange(100, dtype=np.float32)
    pos = 0
    for step in [3, 5, 2, 7, 1, 6, 8, 4]:
        ring.push(x[pos:pos + step])
        pos += step
        out.append(ring.pop(8))
    got = np.concatenate(out)
    np.testing.assert_array_equal(got, x[: len(got)])
    assert ring.dropped == 0


def test_overflow_drops_oldest_and_counts():
    ring = rtclassify.SampleRing(8)
    assert ring.push(np.arange(6, dtype=np.float32)) == 0
    assert ring.push(np.arange(6, 10, dtype=np.float32)) == 2  # 10 samples into 8
    assert ring.dropped == 2 and ring.available == 8
    np.testing.assert_array_equal(ring.pop(100), np.arange(2, 10, dtype=np.float32))
    assert ring.available == 0


def test_block_longer_than_capacity_keeps_its_tail():
    ring = rtclassify.SampleRing(16)
    ring.push(np.full(5, -1, np.float32))
    big = np.arange(40, dtype=np.float32)
    assert ring.push(big) == 5 + 24
    assert ring.dropped == 29
    np.testing.assert_array_equal(ring.pop(16), big[-16:])


def test_pop_into_out_and_empty():
    ring = rtclassify.SampleRing(32)
    buf = np.zeros(10, np.float32)
    assert ring.pop(10, out=buf).shape == (0,)
    ring.push(np.ones(4, np.float32))
    got = ring.pop(10, out=buf)
    assert got.shape == (4,) and np.shares_memory(got, buf)
    with pytest.raises(ValueError, match="out"):
        ring.pop(20, out=buf)
    with pytest.raises(TypeError, match="out"):
        ring.pop(4, out=np.zeros(10, np.float64))
    with pytest.raises(ValueError, match="1-D"):
        ring.push(np.zeros((2, 2), np.float32))


def test_reset():
    ring = rtclassify.SampleRing(4)
    ring.push(np.ones(9, np.float32))
    ring.reset()
    assert ring.available == 0 and ring.dropped == 0 and ring.pushed == 0


def test_threads_move_ten_million_samples_losslessly():
    total = 10_000_000
    ring = rtclassify.SampleRing(1 << 16)
    src = np.arange(total, dtype=np.float32)  # exact integers up to 2**24
    received = np.empty(total, np.float32)
    errors = []

    def producer():
        rng = np.random.default_rng(1)
        pos = 0
        while pos < total:
            n = min(int(rng.integers(1, 4096)), total - pos)
            while ring.capacity - ring.available < n:  # capacity suffices: wait, don't overflow
                time.sleep(0)
            ring.push(src[pos:pos + n])
            pos += n

    def consumer():
        rng = np.random.default_rng(2)
        pos = 0
        deadline = time.monotonic() + 120
        while pos < total and time.monotonic() < deadline:
            n = min(int(rng.integers(1, 4096)), total - pos)
            got = ring.pop(n, out=received[pos:pos + n])
            pos += got.shape[0]
            if got.shape[0] == 0:
                time.sleep(0)
        if pos != total:
            errors.append(f"consumer stopped at {pos}")

    threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert ring.dropped == 0
    np.testing.assert_array_equal(received, src)


def test_overflow_under_concurrency_keeps_order():
    # A slow consumer: whatever it receives is in order, and received + dropped == pushed.
    total = 2_000_000
    ring = rtclassify.SampleRing(4096)
    src = np.arange(total, dtype=np.float32)
    chunks = []
    done = threading.Event()

    def producer():
        for pos in range(0, total, 1000):
            ring.push(src[pos:pos + 1000])
        done.set()

    def consumer():
        while not (done.is_set() and ring.available == 0):
            got = ring.pop(700)
            if got.size:
                chunks.append(got.copy())
            time.sleep(0.0001)

    threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = np.concatenate(chunks)
    assert np.all(np.diff(got) > 0)  # strictly increasing: nothing reordered or duplicated
    assert got.size + ring.dropped == total


def test_pushed_counts_every_sample_given_also_of_a_block_longer_than_the_ring():
    ring = rtclassify.SampleRing(8)
    ring.push(np.arange(10, dtype=np.float32))  # only the last 8 fit
    assert ring.pushed == 10 and ring.dropped == 2 and ring.available == 8
    ring.push(np.arange(3, dtype=np.float32))  # overflow of a block that fits: the 3 oldest go
    assert ring.pushed == 13 and ring.dropped == 5
    ring.reset()
    assert ring.pushed == 0 and ring.dropped == 0


def test_reset_while_another_thread_pushes_is_refused():
    """reset() must not run while a push (which releases the GIL for large blocks) is in progress."""
    ring = rtclassify.SampleRing(1 << 22)
    block = np.ones(1 << 22, np.float32)
    stop = threading.Event()

    def producer():
        while not stop.is_set():
            ring.push(block)

    t = threading.Thread(target=producer)
    t.start()
    refused = 0
    try:
        deadline = time.monotonic() + 10.0
        while refused == 0 and time.monotonic() < deadline:
            try:
                ring.reset()
            except RuntimeError as exc:
                assert "SampleRing.reset" in str(exc) and "another thread" in str(exc)
                refused += 1
    finally:
        stop.set()
        t.join()
    assert refused > 0
    ring.reset()  # idle again: allowed
    assert ring.available == 0 and ring.pushed == 0


def test_a_pop_larger_than_the_ring_allocates_no_more_than_the_ring():
    r = rtclassify.SampleRing(4096)
    r.push(np.ones(100, np.float32))
    got = r.pop(2**40)  # would be a 4 TiB array
    assert got.shape == (100,) and r.available == 0
    out = np.empty(4096, np.float32)
    r.push(np.ones(10, np.float32))
    assert r.pop(2**40, out=out).shape == (10,)  # out needs room for the capacity only
