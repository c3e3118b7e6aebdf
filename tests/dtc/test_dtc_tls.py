"""DTC over TLS on loopback (issue 13 item 15): ``mia-elite serve --tls CERT KEY`` and the client's
TLS option, with the server certificate's SHA-256 fingerprint pinned on first connect instead of
verification turned off. Certificates are generated here with the ``cryptography`` package: a
self-signed one (Sierra Chart's usual case) and one signed by a test CA.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import io
import ipaddress
import ssl
import threading

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.cli import probe, serve
from app.core.events import KIND_TRADE
from app.dtc import client as CL
from app.dtc import codec as C
from app.dtc import messages as M
from app.dtc.messages import MessageType as T
from app.feeds.samples import load_default_sample
from app.live.pipeline import PipelineConfig
from app.sim.server import DTCServer

pytestmark = pytest.mark.timeout(120)


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def _cert(subject: str, key, issuer=None, issuer_key=None, ca=False):
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                            critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


def _write(tmp, stem, cert, key):
    cp, kp = tmp / f"{stem}.crt", tmp / f"{stem}.key"
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return cp, kp


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """Self-signed server certificate, and a CA with a server certificate it signed."""
    tmp = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    self_signed = _cert("localhost", key)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("MIA test CA", ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    signed = _cert("localhost", srv_key, issuer=ca.subject, issuer_key=ca_key)
    ca_path = tmp / "ca.crt"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return {
        "self": _write(tmp, "self", self_signed, key),
        "self_fp": ":".join(f"{b:02X}" for b in hashlib.sha256(self_signed.public_bytes(
            serialization.Encoding.DER)).digest()),
        "signed": _write(tmp, "signed", signed, srv_key),
        "ca": ca_path,
    }


@pytest.fixture(scope="module")
def rec():
    return load_default_sample()


def test_fingerprint_forms():
    fp = CL.certificate_fingerprint(b"x")
    assert len(fp) == 95 and fp.count(":") == 31
    assert CL.normalize_fingerprint(fp.lower().replace(":", "")) == fp
    assert CL.normalize_fingerprint(" " + fp.replace(":", " ")) == fp and CL.normalize_fingerprint("") == ""
    with pytest.raises(ValueError, match="64 hex digits"):
        CL.normalize_fingerprint("AB:CD")
    with pytest.raises(ValueError, match="64 hex digits"):
        CL.DTCClient("127.0.0.1", 1, tls=True, tls_fingerprint="not a fingerprint")


def test_self_signed_server_is_refused_without_a_pin_and_trusted_with_it(certs, rec):
    ev = rec.events
    k = int(np.flatnonzero(ev["kind"] == KIND_TRADE)[50]) + 1

    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=False, paused=True, tls=certs["self"])
        await srv.start()
        try:
            srv.publish("ESH4", ev[:k])
            # 1. no pin: refused with the certificate's fingerprint; not one DTC byte reached the server
            cl = CL.DTCClient("127.0.0.1", srv.port, tls=True, reconnect=False)
            with pytest.raises(CL.UntrustedCertificate) as info:
                await cl.connect()
            assert info.value.fingerprint == certs["self_fp"] and not info.value.pinned
            assert certs["self_fp"] in str(info.value) and "--tls-fingerprint" in str(info.value)
            assert srv.stats["messages_in"] == 0
            await cl.close()
            # 2. a wrong pin: refused (a different server), nothing sent
            wrong = "00:" * 31 + "00"
            cl = CL.DTCClient("127.0.0.1", srv.port, tls=True, tls_fingerprint=wrong, reconnect=False)
            with pytest.raises(CL.UntrustedCertificate, match="not the pinned"):
                await cl.connect()
            assert srv.stats["messages_in"] == 0
            await cl.close()
            # 3. the pin (lower case, no colons: any usual form): logon, market data, an order
            pin = certs["self_fp"].replace(":", "").lower()
            cl = CL.DTCClient("127.0.0.1", srv.port, tls=True, tls_fingerprint=pin, trade_account="Sim1")
            batches: list = []
            updates: list = []
            cl.add_listener(T.ORDER_UPDATE, updates.append)
            try:
                lr = await cl.connect()
                assert lr.Result == 1 and cl.peer_fingerprint == certs["self_fp"]
                await cl.subscribe_market("ESH4", on_events=batches.append)
                cid = cl.submit_order(M.SubmitNewSingleOrder(Symbol="ESH4", OrderType=1, BuySell=1, Quantity=1,
                                                             TimeInForce=1))
                srv.publish("ESH4", ev[k:k + 2000])
                for _ in range(1000):
                    if any(u.ClientOrderID == cid and u.OrderStatus == M.OrderStatus.ORDER_STATUS_FILLED
                           for u in updates):
                        break
                    await asyncio.sleep(0.01)
                assert batches and sum(b.shape[0] for b in batches) > 100
                assert srv.engine.position("ESH4").qty == 1  # the venue's own state
                assert cl.decode_errors == 0
            finally:
                await cl.close()
            # 4. a plain client on the TLS port gets no logon
            plain = CL.DTCClient("127.0.0.1", srv.port, reconnect=False, connect_timeout_s=2)
            with pytest.raises((OSError, asyncio.TimeoutError, CL.DTCError)):
                await plain.connect()
            await plain.close()
        finally:
            await srv.stop()

    run(main())


def test_a_certificate_signed_by_a_trusted_authority_needs_no_pin(certs, rec, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certs["ca"]))  # the system's authorities: the test CA

    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=False, paused=True, tls=certs["signed"])
        await srv.start()
        try:
            for host in ("127.0.0.1", "localhost"):
                cl = CL.DTCClient(host, srv.port, tls=True, reconnect=False)
                try:
                    assert (await cl.connect()).Result == 1
                    assert cl.peer_fingerprint
                finally:
                    await cl.close()
            # the certificate verifies, so the dialog would not ask to pin it
            assert (await asyncio.to_thread(CL.fetch_fingerprint, "127.0.0.1", srv.port))[1] == ""
        finally:
            await srv.stop()

    run(main())


def test_probe_with_tls_prints_the_fingerprint_to_pin_then_connects_with_it(certs, rec):
    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=False, paused=True, tls=certs["self"])
        await srv.start()
        try:
            out = io.StringIO()
            code = await probe.probe("127.0.0.1", srv.port, "ESH4", seconds=0.3, tls=True, out=out)
            text = out.getvalue()
            assert code == 2 and certs["self_fp"] in text and "Traceback" not in text, text
            assert len(text.strip().splitlines()) == 1
            out = io.StringIO()
            srv.publish("ESH4", rec.events[:5000])
            code = await probe.probe("127.0.0.1", srv.port, "ESH4", seconds=1.2, tls=True,
                                     tls_fingerprint=certs["self_fp"], out=out)
            text = out.getvalue()
            assert code == 0, text
            assert f"TLS: server certificate SHA-256 {certs['self_fp']}" in text
        finally:
            await srv.stop()

    run(main())


def test_serve_tls_option_and_bad_certificate_files(certs, tmp_path):
    p = argparse.ArgumentParser()
    serve.add_arguments(p)
    cert, key = certs["self"]
    args = p.parse_args(["--tls", str(cert), str(key), "--port", "0", "--seconds", "20", "--speed", "0"])
    assert args.tls == [str(cert), str(key)]

    async def main():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            task = asyncio.create_task(serve.serve(args))
            for _ in range(2000):
                if "MIA Elite DTC server on" in out.getvalue():
                    break
                await asyncio.sleep(0.01)
            line = out.getvalue().splitlines()[0]
            assert "(TLS, certificate" in line
            port = int(line.split("127.0.0.1:")[1].split(" ")[0].rstrip(":"))
            fp, verify_error = await asyncio.to_thread(CL.fetch_fingerprint, "127.0.0.1", port)
            assert fp == certs["self_fp"] and verify_error
            cl = CL.DTCClient("127.0.0.1", port, tls=True, tls_fingerprint=fp, reconnect=False)
            try:
                assert (await cl.connect()).Result == 1
            finally:
                await cl.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    run(main())
    err = io.StringIO()
    bad = p.parse_args(["--tls", str(tmp_path / "missing.crt"), str(key), "--port", "0"])
    with contextlib.redirect_stderr(err):
        assert serve.run(bad) == 2
    assert "missing.crt: no such file" in err.getvalue() and "Traceback" not in err.getvalue()
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert serve.run(p.parse_args(["--tls", str(garbage), str(key), "--port", "0"])) == 2
    assert "cannot be used" in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1


def test_websocket_inside_tls(certs, rec):
    from websockets.asyncio.client import connect

    async def main():
        srv = DTCServer(rec, port=0, speed=0, loop_replay=False, paused=True, tls=certs["self"])
        await srv.start()
        try:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the test client; the fingerprint is checked below
            async with connect(f"wss://127.0.0.1:{srv.port}/", ssl=ctx) as ws:
                der = ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
                assert CL.certificate_fingerprint(der) == certs["self_fp"]
                await ws.send(C.encode(M.LogonRequest(ProtocolVersion=8, HeartbeatIntervalInSeconds=10),
                                       C.Encoding.JSON).decode())
                reply = await asyncio.wait_for(ws.recv(), 10)
                assert C.decode_frame(reply.encode()[:-1], C.Encoding.JSON).TYPE == T.LOGON_RESPONSE
        finally:
            await srv.stop()

    run(main())


def test_settings_keep_tls_and_check_the_fingerprint(tmp_path, certs):
    from app.config.prefs import Prefs
    from app.config.schema import ConfigError
    from app.config.settings import from_dict, load_settings

    with pytest.raises(ConfigError, match="tls_fingerprint"):
        from_dict({"connection": {"tls": True, "tls_fingerprint": "AB:CD"}})
    pr = Prefs(tmp_path / "settings.toml")
    pr.set("connection.tls", True)
    pr.set("connection.tls_fingerprint", certs["self_fp"])
    pr.save()
    st = load_settings(tmp_path / "settings.toml")
    assert st.connection.tls and st.connection.tls_fingerprint == certs["self_fp"]


class _TlsAcceptor:
    """A TLS listener on its own thread (the dialog reads certificates synchronously)."""

    def __init__(self, cert, key):
        import socket

        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                with self.ctx.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                pass

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def test_connection_dialog_tls_checkbox_pins_the_certificate_on_first_connect(qtbot, tmp_path, certs, monkeypatch):
    from app.config.prefs import Prefs
    from app.ui.connection_dialog import ConnectionDialog, config_from_prefs

    monkeypatch.setattr("app.ui.connection_dialog.set_password", lambda *a: True)
    acceptor = _TlsAcceptor(*certs["self"])
    asked: list = []
    try:
        pr = Prefs(tmp_path / "settings.toml")
        dlg = ConnectionDialog(PipelineConfig(), pr)
        qtbot.addWidget(dlg)
        dlg.embedded.setChecked(False)
        dlg.host.setText("127.0.0.1")
        dlg.port.setValue(acceptor.port)
        dlg.tls.setChecked(True)
        dlg.add_symbol_row({"name": "ES", "symbol": "ESH4", "tick_size": 0.25})
        # first the user says no: nothing is trusted, the dialog stays open with the reason
        monkeypatch.setattr(dlg, "confirm_fingerprint", lambda h, p, fp, err: asked.append(fp) or False)
        dlg.accept()
        assert "not trusted" in dlg.error_label.text() and asked == [certs["self_fp"]]
        assert not dlg.tls_fingerprint.text()
        # then yes: the fingerprint is pinned and saved
        monkeypatch.setattr(dlg, "confirm_fingerprint", lambda h, p, fp, err: asked.append(fp) or True)
        dlg.accept()
        cfg = dlg.result_config()
        assert cfg.tls and cfg.tls_fingerprint == certs["self_fp"] and len(asked) == 2
        again = config_from_prefs(Prefs(tmp_path / "settings.toml"))
        assert again.tls and again.tls_fingerprint == certs["self_fp"]
        # a long username is refused in the dialog too (issue 13 item 10)
        dlg2 = ConnectionDialog(again, None)
        qtbot.addWidget(dlg2)
        dlg2.username.setText("u" * 32)
        dlg2.add_symbol_row({"name": "ES", "symbol": "ESH4", "tick_size": 0.25})
        dlg2.accept()
        assert "at most 31 bytes" in dlg2.error_label.text()
    finally:
        acceptor.close()


def test_gui_tls_options_reach_the_dtc_source(tmp_path):
    from app.config.prefs import Prefs
    from app.live.sources import DTCSource, make_source
    from app.ui import main as gui_main

    p = argparse.ArgumentParser()
    gui_main.add_arguments(p)
    fp = "AB:" * 31 + "AB"
    cfg = gui_main.build_config(p.parse_args(["--host", "127.0.0.1", "--tls", "--tls-fingerprint", fp]),
                                Prefs(tmp_path / "settings.toml"))
    assert cfg.tls and cfg.tls_fingerprint == fp
    src = make_source(cfg)
    assert isinstance(src, DTCSource) and src.client_options == {"tls": True, "tls_fingerprint": fp}
