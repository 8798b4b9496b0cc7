"""The compat tests' PostgreSQL: the URL (COGNATE_TEST_POSTGRES_URL), a schema of a test's own,
and a TCP relay in front of the database that a test can silence or cut, to play a network
partition or a database restart."""

import os
import socket
import subprocess
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest

PG_URL = os.environ.get("COGNATE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


def require_postgres():
    """Skips the test where PostgreSQL is not reachable; fails it in CI, which must have it."""
    try:
        ready = subprocess.run(["pg_isready", "-q", "-d", PG_URL], timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ready = False
    if not ready:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_URL} is required in CI", pytrace=False)
        pytest.skip(f"PostgreSQL at {PG_URL} is not reachable")


def new_schema(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def schema_url(schema: str, relay: "Relay | None" = None) -> str:
    """The database URL of `schema` (credentials kept), through `relay` when given."""
    parts = urlsplit(PG_URL)
    credentials, _, host = parts.netloc.rpartition("@")
    if relay:
        host = relay.addr
    userinfo = f"{credentials}@" if credentials else ""
    query = f"{parts.query}&" if parts.query else ""
    return f"{parts.scheme}://{userinfo}{host}{parts.path}?{query}schema={schema}"


def drop_schema(schema: str):
    subprocess.run(["psql", PG_URL, "-q", "-c", f"DROP SCHEMA IF EXISTS {schema} CASCADE"], check=False,
                   capture_output=True)


class Relay:
    """Passes bytes between its clients and PostgreSQL. While `quiet` is set it holds what it
    read and connects nobody new (a link that stops passing bytes without a reset); `cut()`
    closes every connection, and while `refusing` is set new ones are closed at once (the
    database restarting)."""

    def __init__(self):
        parts = urlsplit(PG_URL)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.quiet = threading.Event()
        self.refusing = threading.Event()
        self.live = set()
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _hold(self):
        while self.quiet.is_set():
            time.sleep(0.01)

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        self._hold()
        if self.refusing.is_set():
            conn.close()
            return
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            conn.close()
            return
        with self.lock:
            # cut() may have run since the check above: a restarting database keeps nobody.
            if self.refusing.is_set():
                for sock in (conn, server):
                    _shut(sock)
                    sock.close()
                return
            self.live.update((conn, server))
        for a, b in ((conn, server), (server, conn)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                self._hold()
                data = src.recv(65536)
                if not data:
                    break
                self._hold()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self.lock:
                self.live.difference_update((src, dst))
            # The other direction's pump closes them too; a second close is harmless.
            for s in (src, dst):
                _shut(s)
                s.close()

    def cut(self):
        """Closes every connection through the relay, as a database that went down would."""
        with self.lock:
            live = list(self.live)
        for s in live:
            _shut(s)

    def close(self):
        self.sock.close()


def _shut(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
