"""Test helpers of the built-in server's tests: a minimal DTC client (a socket and
:class:`app.dtc.codec.Decoder`, no client policies), a bounded poll, and a runner for
``async def`` tests. Imported by the ``tests/sim`` modules (their folder is on ``sys.path``)."""

from __future__ import annotations

import asyncio
import functools

from app.dtc import codec
from app.dtc import messages as M
from app.dtc.messages import Encoding, MessageType as T


async def until(pred, timeout: float = 20.0) -> bool:
    """Poll ``pred`` until it holds (bounded): for bytes a real socket must still deliver."""
    for _ in range(int(timeout / 0.01)):
        if pred():
            return True
        await asyncio.sleep(0.01)
    return pred()


def run_async(fn):
    """Run an ``async def`` test in a fresh event loop (no asyncio plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


class RawClient:
    """Socket + codec; collects every decoded message."""

    def __init__(self, encoding=Encoding.BINARY):
        self.encoding = encoding
        self.dec = codec.Decoder(Encoding.BINARY, follow_encoding_response=True)
        self.msgs: list = []
        self._new = asyncio.Event()
        self.closed = False

    async def connect(self, port):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self._task = asyncio.create_task(self._read())
        if self.encoding != Encoding.BINARY:
            self.writer.write(codec.encoding_request(self.encoding))
            r = await self.wait_for(lambda m: m.TYPE == T.ENCODING_RESPONSE)
            assert r.Encoding == self.encoding
        return self

    async def _read(self):
        try:
            while True:
                data = await self.reader.read(1 << 16)
                if not data:
                    break
                self.msgs.extend(self.dec.feed(data))
                self._new.set()
        except (ConnectionError, asyncio.CancelledError):
            pass
        self.closed = True
        self._new.set()

    def send(self, msg):
        self.writer.write(codec.encode(msg, self.encoding))

    async def wait_for(self, pred, timeout=20.0, start=0):
        """First message (from index ``start``) matching ``pred``."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        i = start
        while True:
            while i < len(self.msgs):
                if pred(self.msgs[i]):
                    return self.msgs[i]
                i += 1
            if self.closed:
                raise ConnectionError("closed")
            left = end - loop.time()
            if left <= 0:
                raise TimeoutError(f"no matching message; last: {self.msgs[-3:]!r}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def logon(self, integer_1=0, heartbeat=10):
        self.send(M.LogonRequest(ProtocolVersion=8, HeartbeatIntervalInSeconds=heartbeat, ClientName="test",
                                 Integer_1=integer_1))
        return await self.wait_for(lambda m: m.TYPE == T.LOGON_RESPONSE)

    async def sync(self, request_id):
        """Round trip: everything the server sent before the answer has arrived."""
        n = len(self.msgs)
        self.send(M.TradeAccountsRequest(RequestID=request_id))
        await self.wait_for(lambda m: m.TYPE == T.TRADE_ACCOUNT_RESPONSE and m.RequestID == request_id, start=n)

    async def close(self):
        self.writer.close()
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    def of(self, *types):
        return [m for m in self.msgs if m.TYPE in types]
