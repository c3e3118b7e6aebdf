"""The .mrec recording format: round trip, crash-tolerant tail, clear errors."""

import numpy as np
import pytest

from app.core import events as ev
from app.feeds.recording import (
    Recording,
    RecordingError,
    RecordingWriter,
    read_recording,
    write_recording,
    write_recording_zst,
)

ES = ev.Instrument("ESH4", 0.25, 12.5, "CME", "E-mini S&P 500 Mar 2024")


def _events():
    d = ev.depth_events([1, 2, 3], [19240, 19241, 19239], [5, 7, 0], ev.SIDE_BID, [ev.OP_SET, ev.OP_SET, ev.OP_DELETE])
    d["flags"][-1] = ev.FLAG_BATCH_END
    t = ev.trade_events([4], [19241], [2.0], ev.SIDE_ASK)
    return np.concatenate([d, t])


def test_round_trip_plain_and_zst(tmp_path):
    rec = Recording(ES, _events(), source="hand-built", extra={"k": 1})
    for path in (write_recording(tmp_path / "a.mrec", rec), write_recording_zst(tmp_path / "a.mrec.zst", rec)):
        back = read_recording(path)
        assert back.instrument == ES
        assert back.source == "hand-built" and back.extra == {"k": 1}
        np.testing.assert_array_equal(back.events, rec.events)
        assert back.start_ns == 1 and back.end_ns == 4


def test_writer_appends_and_partial_tail_is_ignored(tmp_path):
    path = tmp_path / "live.mrec"
    with RecordingWriter(path, ES, source="test") as w:
        w.append(_events()[:2])
        w.append(_events()[2:])
    with open(path, "ab") as f:  # a crash in the middle of a record
        f.write(b"\x01" * 17)
    back = read_recording(path)
    assert len(back.events) == 4
    np.testing.assert_array_equal(back.events, _events())


def test_bad_files_raise_clear_errors(tmp_path):
    bad = tmp_path / "bad.mrec"
    bad.write_bytes(b"not a recording at all")
    with pytest.raises(RecordingError, match="bad magic"):
        read_recording(bad)
    with pytest.raises(ValueError, match="EVENT_DTYPE"):
        write_recording(tmp_path / "x.mrec", Recording(ES, np.zeros(3)))


def test_instrument_tick_conversion():
    assert ES.to_ticks(4810.25) == 19241
    assert list(ES.to_ticks([4810.0, 4810.124, 4810.13])) == [19240, 19240, 19241]
    assert float(ES.to_price(19241)) == 4810.25
