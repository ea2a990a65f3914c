import pytest

from app.ratelimit import RateLimiter, retry_after


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_bucket_of_a_minute_refills_continuously():
    clock = Clock()
    rl = RateLimiter(6, clock)  # 6 tasks per minute: one every 10 s, bursts of 6
    assert [rl.take("a", 1) for _ in range(6)] == [0.0] * 6
    assert rl.take("a", 1) == pytest.approx(10.0)  # empty: the next token in 10 s
    clock.t += 5
    assert rl.take("a", 1) == pytest.approx(5.0)
    clock.t += 5
    assert rl.take("a", 1) == 0.0
    assert rl.take("b", 6) == 0.0  # keys do not share a bucket


def test_requests_cost_their_task_count_and_a_big_request_waits_for_a_full_bucket():
    clock = Clock()
    rl = RateLimiter(4, clock)  # one task every 15 s
    assert rl.take("a", 3) == 0.0
    assert rl.take("a", 3) == pytest.approx(2 * 15.0)  # 1 left, 3 needed
    clock.t += 60
    assert rl.take("a", 8) == 0.0  # more than the bucket: admitted when full, leaving a debt of 4 tasks
    assert rl.take("a", 1) == pytest.approx(5 * 15.0)
    # over any long run no key gets more than its rate
    clock.t += 600
    granted = 0
    for _ in range(6000):
        clock.t += 0.1
        if rl.take("a", 1) == 0.0:
            granted += 1
    assert granted <= 4 + 4 * 10 + 1  # the bucket plus 10 minutes of refill


def test_retry_after_is_whole_seconds_at_least_one():
    assert retry_after(0.01) == {"Retry-After": "1"} and retry_after(14.2) == {"Retry-After": "15"}
