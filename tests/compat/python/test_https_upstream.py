"""https upstreams (issue 5, item 3): the gateway proxies to an upstream over TLS, trusting the
system's certificates (here `SSL_CERT_FILE` names a test CA, as a user names a private one), and
refuses an upstream whose certificate is not trusted or not for the host it dialled (502)."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from cognate_helpers import free_port
from conftest import launch_server


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        out = json.dumps({"path": self.path, "tls": True}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca_and_leaf(d, name):
    """A CA and a certificate it signs for the IP address 127.0.0.1 (no DNS name)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name} test CA",
            "-keyout", f"{name}-ca.key", "-out", f"{name}-ca.pem", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{name}-ca.pem", "-CAkey", f"{name}-ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    return d / f"{name}-ca.pem", d / f"{name}.pem", d / f"{name}.key"


def tls_upstream(cert, key):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    trusted_ca, trusted_cert, trusted_key = make_ca_and_leaf(d, "trusted")
    _, other_cert, other_key = make_ca_and_leaf(d, "other")
    good = tls_upstream(trusted_cert, trusted_key)
    stranger = tls_upstream(other_cert, other_key)
    gw = free_port()
    config = d / "cognate.yaml"
    config.write_text(f"""
apis:
  - name: secure
    kind: rest
    listen: 127.0.0.1:{gw}
    stages: [prod]
    routes:
      - route: GET /hello/{{proxy+}}
        authorizer: none
        integration: {{type: http, url: "https://127.0.0.1:{good.server_address[1]}/hi/{{proxy}}"}}
      - route: GET /stranger
        authorizer: none
        integration: {{type: http, url: "https://127.0.0.1:{stranger.server_address[1]}/hi"}}
      - route: GET /wrong-name
        authorizer: none
        integration: {{type: http, url: "https://localhost:{good.server_address[1]}/hi"}}
""")
    server = launch_server(workdir=str(d), extra_args=("--config", str(config)),
                           extra_env={"SSL_CERT_FILE": str(trusted_ca)})
    yield {"gw": f"http://127.0.0.1:{gw}", "server": server}
    server.stop()
    good.shutdown()
    stranger.shutdown()


def test_an_https_upstream_with_a_trusted_certificate_is_proxied(env):
    r = requests.get(env["gw"] + "/prod/hello/a/b?x=1", timeout=10)
    assert r.status_code == 200, (r.text, env["server"].log_tail())
    assert r.json() == {"path": "/hi/a/b?x=1", "tls": True}


def test_an_untrusted_certificate_or_another_host_name_is_a_502(env):
    for path in ("/prod/stranger", "/prod/wrong-name"):
        r = requests.get(env["gw"] + path, timeout=10)
        assert r.status_code == 502, (path, r.text)
        assert r.json() == {"message": "Internal server error"}
    # Still fine for the trusted one afterwards.
    assert requests.get(env["gw"] + "/prod/hello/x", timeout=10).status_code == 200
