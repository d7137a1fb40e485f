"""The functions' broker client (``K_SINK``): a plain-http sink, a Broker's in-cluster ingress, receives binary-mode
CloudEvents; an https sink's certificate is verified. The client loads the CA bundle only for https
(``assay.events.publisher.HttpSink``), so these pin that skipping it for http never weakens an https sink."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from assay.core.events import OutboxEvent
from assay.events.publisher import HttpSink
from tests.support.net import LOOPBACK
from tests.support.servers import QuietHandler

EVENT = OutboxEvent(type="dev.assay.test.v1", source="/assay/t/sink", data={"n": 1}, subject="job-1")


class Received:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []


@contextmanager
def broker(received: Received, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A stand-in Broker ingress on loopback that accepts every event (202); over TLS with ``tls``."""

    class Ingress(QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(202)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer((LOOPBACK, 0), Ingress)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheme = "https" if tls is not None else "http"
        yield f"{scheme}://{LOOPBACK}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def self_signed(directory: Path) -> ssl.SSLContext:
    """A server TLS context for 127.0.0.1 with a certificate no CA signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


async def deliver(url: str) -> None:
    sink = HttpSink(url, timeout=10)
    try:
        await sink.deliver(EVENT)
    finally:
        await sink.close()


def test_a_plain_http_sink_gets_the_event_in_binary_mode() -> None:
    received = Received()
    with broker(received) as url:
        asyncio.run(deliver(url))
    [(headers, body)] = received.requests
    assert headers["ce-type"] == EVENT.type
    assert headers["ce-id"] == EVENT.id
    assert headers["ce-subject"] == "job-1"
    assert json.loads(body) == {"n": 1}


def test_an_https_sink_with_an_unverifiable_certificate_gets_nothing(tmp_path: Path) -> None:
    received = Received()
    with broker(received, self_signed(tmp_path)) as url:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            asyncio.run(deliver(url))
        # Upper-case schemes are the same https: verification is not skipped for them either.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            asyncio.run(deliver(url.replace("https://", "HTTPS://")))
    assert received.requests == []
