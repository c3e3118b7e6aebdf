"""Hostile and malformed input on both sides of a DTC connection (issue 13, items 5, 10, 11).

Every malformed frame is counted with its reason and skipped; nothing a peer sends raises out of
the decoder, kills the connection, reaches the book or a file written by ``mia-elite record``.
The server side runs the built-in server in-process on loopback with the shipped real ES
sample; the client side runs :class:`app.dtc.client.DTCClient` against a small scripted server.
"""

from __future__ import annotations

import asyncio
import io
import struct

import numpy as np
import pytest

from app.cli import probe
from app.core import events as ev
from app.dtc import batch as B
from app.dtc import client as CL
from app.dtc import codec as C
from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType as T

pytestmark = pytest.mark.timeout(120)

TICK = 0.25
NESTED = b"[" * 20_000  # msgspec raises RecursionError for it, not DecodeError


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(pred, timeout=10.0) -> bool:
    """Poll ``pred`` until it holds (bounded): for bytes a real socket must still deliver."""
    for _ in range(int(timeout / 0.01)):
        if pred():
            return True
        await asyncio.sleep(0.01)
    return pred()


class ScriptedServer:
    """Negotiation and logon, then whatever the test writes (``writers[-1]``) or ``on_subscribe``
    sends when the client asks for market data / depth."""

    def __init__(self, *, grant=None, on_subscribe=None):
        self.grant = grant
        self.on_subscribe = on_subscribe
        self.writers: list = []
        self.received: list = []
        self.connections = 0

    async def start(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self):
        self.server.close()
        for w in self.writers:
            w.transport.abort()
        await self.server.wait_closed()

    async def _handle(self, reader, writer):
        self.connections += 1
        self.writers.append(writer)
        dec = C.Decoder(Encoding.BINARY)
        enc = Encoding.BINARY
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for m in dec.feed(data):
                    self.received.append(m)
                    if m.TYPE == T.ENCODING_REQUEST:
                        granted = self.grant if self.grant is not None else m.Encoding
                        writer.write(C.encode(M.EncodingResponse(Encoding=granted), enc))
                        if granted in C.SUPPORTED_ENCODINGS:
                            enc = dec.encoding = Encoding(granted)
                    elif m.TYPE == T.LOGON_REQUEST:
                        writer.write(C.encode(M.LogonResponse(Result=1, ServerName="scripted"), enc))
                    elif m.TYPE in (T.MARKET_DATA_REQUEST, T.MARKET_DEPTH_REQUEST) and self.on_subscribe:
                        self.on_subscribe(writer, m, enc)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


# ---------------------------------------------------------------- item 5: deeply nested JSON


def test_decoder_counts_deeply_nested_json_and_keeps_the_next_frame():
    hb = C.encode(M.Heartbeat(CurrentDateTime=7), Encoding.JSON)
    for enc in (Encoding.JSON, Encoding.JSON_COMPACT):
        d = C.Decoder(enc)
        out = d.feed(NESTED + b"\x00" + hb)  # the same read: the joined parse fails first
        assert out == [M.Heartbeat(CurrentDateTime=7)]
        assert d.errors == 1 and "RecursionError" in d.last_error
    with pytest.raises(ValueError, match="invalid JSON"):
        C.decode_frame(NESTED, Encoding.JSON)


def test_server_skips_deeply_nested_json_and_answers_the_logon_in_the_same_read():
    from app.feeds.samples import load_default_sample
    from app.sim.server import DTCServer

    async def main():
        srv = DTCServer(load_default_sample(), port=0, speed=0, loop_replay=False, paused=True)
        await srv.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            logon = C.encode(M.LogonRequest(ProtocolVersion=8, HeartbeatIntervalInSeconds=10, ClientName="t"),
                             Encoding.JSON)
            # negotiation, the nested frame and the logon in one write (one read on the server)
            writer.write(C.encoding_request(Encoding.JSON) + NESTED + b"\x00" + logon)
            dec = C.Decoder(Encoding.BINARY, follow_encoding_response=True)
            got: list = []
            while not any(m.TYPE == T.LOGON_RESPONSE for m in got):
                data = await asyncio.wait_for(reader.read(65536), 10)
                assert data, f"server closed the connection; stats {srv.stats}"
                got.extend(dec.feed(data))
            assert srv.stats["malformed_frames"] == 1
            writer.close()
        finally:
            await srv.stop()

    run(main())


def test_client_skips_deeply_nested_json_and_stays_connected():
    async def main():
        srv = await ScriptedServer().start()
        cl = CL.DTCClient("127.0.0.1", srv.port, encoding=Encoding.JSON, backoff_initial_s=0.05)
        updates: list = []
        cl.add_listener(T.ORDER_UPDATE, updates.append)
        try:
            await cl.connect()
            upd = C.encode(M.OrderUpdate(ClientOrderID="c1", ServerOrderID="S1", OrderStatus=4), Encoding.JSON)
            srv.writers[-1].write(NESTED + b"\x00" + upd)
            assert await until(lambda: updates, 10)
            assert updates[0].ClientOrderID == "c1"
            assert cl.decode_errors == 1 and cl.state == "connected" and srv.connections == 1
        finally:
            await cl.close()
            await srv.stop()

    run(main())


# ---------------------------------------------------------------- item 10: the client side


def test_encode_reports_a_float32_overflow_as_encode_error():
    with pytest.raises(C.EncodeError, match="Price"):
        C.encode(M.MarketDepthUpdateLevelFloatWithMilliseconds(SymbolID=1, Price=1e39, Quantity=1.0))
    with pytest.raises(C.EncodeError, match="Quantity"):
        C.encode(M.MarketDataUpdateBidAskCompact(SymbolID=1, BidPrice=1.0, BidQuantity=3e38 * 10))


def test_probe_reports_an_unsupported_encoding_in_one_line():
    async def main():
        srv = await ScriptedServer(grant=4).start()  # protobuf: not spoken by this client
        try:
            out = io.StringIO()
            code = await probe.probe("127.0.0.1", srv.port, "ESZ5", seconds=0.5, connect_timeout_s=5, out=out)
            text = out.getvalue()
            assert code == 2, text
            assert "unsupported encoding 4" in text and "Traceback" not in text
            assert len(text.strip().splitlines()) == 1
        finally:
            await srv.stop()

    run(main())


def test_username_or_password_longer_than_the_logon_field_is_a_clear_error():
    async def main():
        srv = await ScriptedServer().start()
        try:
            for kw in ({"username": "u" * 32}, {"password": "p" * 40}, {"username": "é" * 16}):
                out = io.StringIO()
                code = await probe.probe("127.0.0.1", srv.port, "ESZ5", seconds=0.5, out=out, **kw)
                text = out.getvalue()
                assert code == 2 and "at most 31 bytes" in text and "Traceback" not in text, text
                assert "p" * 40 not in text  # a password is never shown
            assert srv.connections == 0  # refused before connecting
            with pytest.raises(ValueError, match="LOGON_REQUEST.Username holds at most 31 bytes"):
                CL.DTCClient("127.0.0.1", srv.port, username="x" * 40)
            CL.DTCClient("127.0.0.1", srv.port, username="x" * 31, password="y" * 31)  # fits
        finally:
            await srv.stop()

    run(main())


def test_settings_refuse_a_username_that_does_not_fit_the_logon():
    from app.config.schema import ConfigError
    from app.config.settings import LOGON_TEXT_MAX_BYTES, ConnectionSettings, from_dict

    assert LOGON_TEXT_MAX_BYTES == CL.logon_text_limit("Username") == CL.logon_text_limit("Password") == 31
    with pytest.raises(ConfigError, match=r"connection\.username .*at most 31 bytes"):
        from_dict({"connection": {"username": "x" * 40}}, "settings.toml")
    with pytest.raises(ConfigError, match="username"):
        ConnectionSettings(username="ü" * 16)  # 32 bytes in UTF-8
    assert from_dict({"connection": {"username": "x" * 31}}).connection.username == "x" * 31


def _quotes_then_depth(bad_price):
    def on_subscribe(writer, m, enc):
        if m.TYPE == T.MARKET_DATA_REQUEST:
            for bid in (bad_price, 4810.0):
                writer.write(C.encode(M.MarketDataUpdateBidAsk(SymbolID=m.SymbolID, BidPrice=bid, BidQuantity=5,
                                                               AskPrice=4810.25, AskQuantity=7,
                                                               DateTime=1_700_000_000), enc))
        elif m.TYPE == T.MARKET_DEPTH_REQUEST:
            e = ev.depth_events(ts=np.full(2, 1_700_000_000_000_000_000), price=[19240, 19241], size=[5.0, 4.0],
                                side=[1, 2], op=1)
            writer.write(B.encode_depth_batch(e, TICK, m.SymbolID, enc, msg_type=122))
    return on_subscribe


def test_client_counts_a_best_bid_of_3e18_as_a_decode_error(caplog):
    async def main():
        srv = await ScriptedServer(on_subscribe=_quotes_then_depth(3e18)).start()
        cl = CL.DTCClient("127.0.0.1", srv.port, backoff_initial_s=0.05)
        batches: list = []
        try:
            await cl.connect()
            await cl.subscribe_market("ESZ5", depth=False, on_events=batches.append, tick_size=TICK)
            assert await until(lambda: cl.decode_errors >= 1 and batches, 10)
            quotes = np.concatenate(batches)
            assert (quotes["kind"] == ev.KIND_QUOTE).all()
            assert sorted(quotes["price"].tolist()) == [19240, 19241]  # only the good quote
            assert cl.decode_errors == 1 and "3e+18" in cl.last_error and cl.state == "connected"
        finally:
            await cl.close()
            await srv.stop()

    with caplog.at_level("WARNING"):
        run(main())
    assert not [r for r in caplog.records if r.levelname == "ERROR" or r.exc_info]


def test_probe_counts_out_of_range_quotes_in_its_errors():
    async def main():
        srv = await ScriptedServer(on_subscribe=_quotes_then_depth(3e18)).start()
        try:
            out = io.StringIO()
            code = await probe.probe("127.0.0.1", srv.port, "ESZ5", seconds=1.2, tick_size=TICK, out=out)
            text = out.getvalue()
            assert code == 0, text
            assert " errors 1 " in [ln for ln in text.splitlines() if " levels " in ln][-1]
            assert "1 decode errors" in text and "last decode error" in text and "Traceback" not in text
        finally:
            await srv.stop()

    run(main())


# ---------------------------------------------------------------- item 11: malformed frames that still frame

SID = 1  # the SymbolID the client allocates for its first subscription


def _good_snapshot(sid=SID):
    e = ev.depth_events(ts=np.full(2, 1_700_000_000_000_000_000), price=[19240, 19241], size=[5.0, 4.0],
                        side=[1, 2], op=1)
    return B.encode_depth_batch(e, TICK, sid, Encoding.BINARY, msg_type=122)


def _good_trade(sid=SID, price=19241.0 * TICK):
    return C.encode(M.MarketDataUpdateTrade(SymbolID=sid, AtBidOrAsk=2, Price=price, Volume=3.0,
                                            DateTime=1_700_000_001.0))


def _malformed(sid=SID):
    """The issue's seven frames, each with the text its reason must contain."""
    d106 = C.encode(M.MarketDepthUpdateLevel(SymbolID=sid, Side=1, Price=4810.0, Quantity=5.0, UpdateType=1,
                                             DateTime=1_700_000_000.5))
    d140 = C.encode(M.MarketDepthUpdateLevelFloatWithMilliseconds(SymbolID=sid, DateTime=1_700_000_000_500,
                                                                  Price=4810.0, Quantity=5.0, Side=1, UpdateType=1,
                                                                  FinalUpdateInBatch=7))
    t107 = _good_trade(sid)
    return [
        (struct.pack("<HH", 12, 9999) + b"\x00" * 8, "unknown message type 9999"),
        (struct.pack("<HH", 8, 0) + b"\x00" * 4, "Type 0"),
        (struct.pack("<HH", 24, 106) + d106[4:24], "(106) of 24 bytes is shorter"),
        (d106[:8] + struct.pack("<H", 5) + d106[10:], "Side 5"),
        (C.encode(M.MarketDepthUpdateLevel(SymbolID=77, Side=1, Price=4810.0, Quantity=5.0, UpdateType=1,
                                           DateTime=1_700_000_000.5)), "SymbolID 77 is not subscribed"),
        (d140, "FinalUpdateInBatch 7"),
        (struct.pack("<HH", 16, 107) + t107[4:16], "(107) of 16 bytes is shorter"),
    ]



def test_each_malformed_frame_is_a_decode_error_with_its_reason():
    for frame, reason in _malformed():
        d = B.MarketStreamDecoder(Encoding.BINARY, {SID: TICK})
        items = d.feed(_good_snapshot() + frame + _good_trade())
        events = np.concatenate([it for it in items if isinstance(it, np.ndarray)])
        assert d.errors == 1 and reason in d.last_error, (reason, d.last_error)
        # what reaches the book: the clear, the two snapshot levels and the good trade only
        assert events["op"].tolist()[:3] == [ev.OP_CLEAR, ev.OP_SET, ev.OP_SET]
        trades = events[events["kind"] == ev.KIND_TRADE]
        assert trades["price"].tolist() == [19241] and events.shape[0] == 4
        assert np.isin(events["side"][1:], (1, 2)).all()


def test_batch_path_and_per_message_rules_give_the_same_reasons():
    for frame, _reason in _malformed():
        d = B.MarketStreamDecoder(Encoding.BINARY, {SID: TICK})
        d.feed(frame)
        msgs = C.Decoder(Encoding.BINARY).feed(frame)
        if msgs and int(msgs[0].TYPE) in B.BATCH_TYPES:  # full-size frames with bad values
            assert B.message_problem(msgs[0], {SID: TICK}) == d.last_error


def test_malformed_values_in_json_are_decode_errors_too():
    for enc in (Encoding.JSON, Encoding.JSON_COMPACT):
        frames = [
            C.encode(M.MarketDepthUpdateLevel(SymbolID=SID, Side=5, Price=4810.0, Quantity=5.0, UpdateType=1), enc),
            C.encode(M.MarketDepthUpdateLevel(SymbolID=77, Side=1, Price=4810.0, Quantity=5.0, UpdateType=1), enc),
            C.encode(M.MarketDepthUpdateLevelFloatWithMilliseconds(SymbolID=SID, Price=4810.0, Quantity=1.0, Side=1,
                                                                   UpdateType=1, FinalUpdateInBatch=7), enc),
            b'{"Type":107,"SymbolID":1,"AtBidOrAsk":2}\x00' if enc == Encoding.JSON
            else b'{"Type":107,"F":[1,2]}\x00',
            b'{"Type":9999}\x00',
            C.encode(M.MarketDataUpdateTrade(SymbolID=SID, AtBidOrAsk=2, Price=4810.25, Volume=1.0,
                                             DateTime=1_700_000_001.0), enc),
        ]
        d = B.MarketStreamDecoder(enc, {SID: TICK})
        items = d.feed(b"".join(frames))
        events = np.concatenate([it for it in items if isinstance(it, np.ndarray)])
        assert d.errors == 5, d.last_error
        assert events.shape[0] == 1 and events["price"][0] == 19241


def test_probe_and_client_count_malformed_frames_and_the_book_stays_clean():
    def on_subscribe(writer, m, enc):
        if m.TYPE == T.MARKET_DEPTH_REQUEST:
            writer.write(_good_snapshot(m.SymbolID) + b"".join(f for f, _ in _malformed(m.SymbolID))
                         + _good_trade(m.SymbolID))

    async def main():
        srv = await ScriptedServer(on_subscribe=on_subscribe).start()
        try:
            out = io.StringIO()
            code = await probe.probe("127.0.0.1", srv.port, "ESZ5", seconds=1.2, tick_size=TICK, out=out)
            text = out.getvalue()
            assert code == 0, text
            line = [ln for ln in text.splitlines() if " levels " in ln][-1]
            assert " errors 7 " in line and "levels 1/1" in line and "bid 4810.00 x 5" in line, line
            assert "1 trades" in text and "7 decode errors" in text
        finally:
            await srv.stop()

    run(main())


def test_record_writes_no_malformed_trade_to_scid(tmp_path):
    from app.cli.record import record_dtc
    from app.feeds.scid import read_scid

    def on_subscribe(writer, m, enc):
        if m.TYPE == T.MARKET_DEPTH_REQUEST:
            writer.write(_good_snapshot(m.SymbolID) + b"".join(f for f, _ in _malformed(m.SymbolID))
                         + _good_trade(m.SymbolID))

    async def main():
        srv = await ScriptedServer(on_subscribe=on_subscribe).start()
        lines: list[str] = []
        try:
            code = await record_dtc(f"127.0.0.1:{srv.port}", "ESZ5", tmp_path / "r.mrec", 1.0, also=("scid",),
                                    tick_size=TICK, say=lines.append, stop=asyncio.Event())
        finally:
            await srv.stop()
        return code, lines

    code, lines = run(main())
    assert code == 0, lines
    assert any("7 malformed messages" in ln for ln in lines), lines
    _hdr, recs = read_scid(tmp_path / "r.scid")
    # one trade record, the good one: no zero-price trade from the 16-byte 107
    assert recs["close"].tolist() == [4810.25] and recs["total_volume"].tolist() == [3], recs
