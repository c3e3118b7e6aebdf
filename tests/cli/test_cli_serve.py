"""``mia-elite serve`` shuts down cleanly on Ctrl-C with busy clients (issue 13 item 9).

The server runs as a real process at maximum speed; two clients read everything, two never read
(tiny receive buffer, no ``recv``); then SIGINT. The process must exit 0 with no traceback
(asyncio prints ``CancelledError`` tracebacks when a connection task is cancelled) and print its
final stats line, which counts all four connections as closed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from app.dtc import codec
from app.dtc import messages as M
from app.dtc.messages import Encoding

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")]


def _client(port: int, read: bool, counter: list) -> socket.socket:
    s = socket.socket()
    if not read:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 12)
    s.connect(("127.0.0.1", port))
    enc = Encoding.BINARY
    s.sendall(codec.encode(M.LogonRequest(HeartbeatIntervalInSeconds=0, ClientName="busy"), enc)
              + codec.encode(M.MarketDataRequest(RequestAction=1, SymbolID=1, Symbol="ESH4"), enc)
              + codec.encode(M.MarketDepthRequest(RequestAction=1, SymbolID=1, Symbol="ESH4"), enc))
    if read:
        def loop() -> None:
            try:
                while True:
                    data = s.recv(1 << 20)
                    if not data:
                        return
                    counter[0] += len(data)
            except OSError:
                return

        threading.Thread(target=loop, daemon=True).start()
    return s


def test_ctrl_c_with_busy_clients_exits_cleanly_with_the_final_stats_line():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", "0", "--speed", "0", "--loop"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    socks = []
    try:
        first = proc.stdout.readline()
        m = re.search(r"on 127\.0\.0\.1:(\d+):", first)
        assert m, first
        port = int(m.group(1))
        got = [0]
        socks = [_client(port, True, got), _client(port, True, got), _client(port, False, got),
                 _client(port, False, got)]
        for _ in range(3000):  # bounded: until the readers have several MB
            if got[0] > 8 << 20:
                break
            time.sleep(0.01)
        assert got[0] > 8 << 20
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        took = time.perf_counter() - t0
    finally:
        for s in socks:
            s.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    print(f"serve stopped {took:.3f} s after SIGINT with 4 busy clients")
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "CancelledError" not in err, err[-3000:]
    last = out.strip().splitlines()[-1]
    stats = json.loads(last)["stats"]
    assert stats["clients_total"] == 4 and stats["connections"] == 0
    assert stats["depth_messages_out"] > 0


def test_the_caps_are_options_of_serve():
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", "0", "--paused", "--max-connections", "1",
                             "--seconds", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        m = re.search(r"on 127\.0\.0\.1:(\d+):", proc.stdout.readline())
        assert m
        port = int(m.group(1))
        first = socket.create_connection(("127.0.0.1", port))
        first.sendall(codec.encode(M.LogonRequest(HeartbeatIntervalInSeconds=0), Encoding.BINARY))
        assert first.recv(1 << 16)  # its LOGON_RESPONSE: it holds the one connection
        second = socket.create_connection(("127.0.0.1", port), timeout=20)
        got = b""
        while True:  # bounded by the socket timeout: the server closes it after the LOGOFF
            data = second.recv(1 << 16)
            if not data:
                break
            got += data
        msgs = codec.Decoder(Encoding.BINARY).feed(got)
        assert [type(x).__name__ for x in msgs] == ["Logoff"] and "too many connections" in msgs[0].Reason
        first.close()
        second.close()
        proc.send_signal(signal.SIGINT)
        out, _err = proc.communicate(timeout=60)
        assert json.loads(out.strip().splitlines()[-1])["stats"]["connections_refused"] == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    bad = subprocess.run([sys.executable, "-m", "app", "serve", "--max-connections", "0"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "mia-elite serve: max_connections must be positive, got 0"]
