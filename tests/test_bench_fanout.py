"""The fan-out benchmark (scripts/bench-fanout) runs end to end at tiny sizes.

Only that it completes, checks its own deliveries and prints a usable ratio: speed
is shown by the benchmark's printed ratios, never asserted by a test.
"""

from __future__ import annotations

import math

import pytest

from scripts.bench import fanout

SUBSCRIBERS, EVENTS = 5, 50


def test_quick_run_delivers_every_event_in_order_and_prints_a_ratio(capsys):
    rows = fanout.run(["--quick", "--subscribers", str(SUBSCRIBERS), "--events", str(EVENTS)])

    by_mode = {row.mode: row for row in rows}
    assert set(by_mode) == {"bare", "hub"}
    for row in rows:
        # The driver raises unless each subscriber got seq 1..EVENTS contiguously.
        assert [s.received for s in row.samples] == [SUBSCRIBERS * EVENTS]
    printed = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.split()}
    _mode, subscribers, events, us_per_frame, ratio, kb_per_conn, _sys_pct = printed["hub"]
    assert (int(subscribers), int(events)) == (SUBSCRIBERS, EVENTS)
    assert math.isfinite(float(ratio)) and float(ratio) > 0
    assert float(ratio) == pytest.approx(by_mode["hub"].ratio, abs=0.01)
    assert float(us_per_frame) > 0
    assert math.isfinite(float(kb_per_conn))


def _frame(kind: str, seq: int = 0) -> str:
    return f'{{"type":"{kind}","topic":"{fanout.TOPIC}","seq":{seq},"payload":{{}}}}'


def test_event_counter_accepts_contiguous_seqs_after_the_snapshot():
    counter = fanout.EventCounter(3)
    for data in ['{"type":"hello"}', _frame("snapshot"), _frame("event", 1), _frame("event", 2)]:
        counter.feed(data)
    assert not counter.complete
    counter.feed(_frame("event", 3))
    assert counter.complete


@pytest.mark.parametrize(
    "frames",
    [
        [_frame("event", 1)],  # before the snapshot
        [_frame("snapshot"), _frame("event", 2)],  # a gap
        [_frame("snapshot"), _frame("event", 1), _frame("event", 1)],  # a duplicate
        [_frame("snapshot"), _frame("event", 1), _frame("event", 2), _frame("event", 3)],  # too many
        [_frame("snapshot"), '{"type":"error","code":"slow_consumer"}'],
    ],
)
def test_event_counter_rejects_anything_else(frames):
    counter = fanout.EventCounter(2)
    with pytest.raises(fanout.BenchError):
        for data in frames:
            counter.feed(data)
