"""A real S3 API on the loopback address for tests: moto's ThreadedMotoServer on
127.0.0.1 (a free port), started and stopped by the fixtures, with the standard AWS
environment pointing every client (janitor's s3fs, boto3, subprocesses) at it."""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_names = itertools.count()


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    assert host == "127.0.0.1"
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in (*ENV, "AWS_ENDPOINT_URL")}
    os.environ.update(ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class Bucket:
    name: str
    client: object

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}".rstrip("/")

    def upload(self, folder: Path, prefix: str) -> None:
        """Every file below ``folder`` as ``prefix/<relative path>``."""
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                key = f"{prefix}/{path.relative_to(folder).as_posix()}"
                self.client.upload_file(str(path), self.name, key)

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def download(self, prefix: str, folder: Path) -> Path:
        for key in self.keys(prefix):
            target = folder / key[len(prefix) :].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(self.name, key, str(target))
        return folder


@pytest.fixture
def bucket(s3_endpoint) -> Bucket:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    name = f"runs-{next(_names)}-{os.getpid()}"
    client.create_bucket(Bucket=name)
    return Bucket(name, client)


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of the S3 server: counts every request (method,
    path, Range header) and answers the ones a rule picks with an error status (throttling,
    5xx), as a busy or failing store does."""

    def __init__(self, upstream: str) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        up = urlsplit(upstream)
        self.requests: list[tuple[str, str, str | None]] = []
        self.served: dict[str, int] = {}  # object path -> bytes of it sent back (GET bodies)
        self.rules: list[list] = []  # [predicate(method, path) -> bool, status, times left]
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests.append((self.command, self.path, self.headers.get("Range")))
                status = proxy._fault(self.command, self.path)
                if status is not None:
                    payload = (
                        b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>"
                        if status == 503
                        else b"<Error><Code>InternalError</Code></Error>"
                    )
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                head = self.command == "HEAD"  # its Content-Length is the object's size
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection") and (
                        head or k.lower() != "content-length"
                    ):
                        self.send_header(k, v)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                if self.command == "GET" and "list-type" not in self.path:
                    key = self.path.split("?", 1)[0]
                    proxy.served[key] = proxy.served.get(key, 0) + len(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _fault(self, method: str, path: str) -> int | None:
        for rule in self.rules:
            if rule[2] and rule[0](method, path):
                rule[2] -= 1
                return rule[1]
        return None

    def fail(self, predicate, status: int, times: int = 10**9) -> None:
        self.rules.append([predicate, status, times])

    def ranged_gets(self) -> int:
        return sum(1 for m, _, r in self.requests if m == "GET" and r)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def s3_proxy(s3_endpoint, monkeypatch) -> FaultProxy:
    """Every client of the test goes through a FaultProxy to the S3 server."""
    proxy = FaultProxy(s3_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        yield proxy
    finally:
        proxy.stop()
