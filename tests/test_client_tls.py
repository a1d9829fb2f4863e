"""``--ca-bundle`` end to end: the real server behind a TLS front whose
certificate comes from a CA of the test's own (as Caddy's ``tls internal``
on a home network). Without the bundle the client says the certificate is
not trusted and names the option; with it, the folder syncs."""

import os
import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from sync.client import cli

from .client_harness import init, read, sync, write

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca_and_cert(folder):
    """A CA (ca.crt) and a certificate for 127.0.0.1 it signed (server.crt/.key)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.crt", "-days", "2", "-subj", "/CN=Home CA", cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
             "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=folder)
    with open(os.path.join(folder, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
             cwd=folder)
    return os.path.join(folder, "ca.crt")


class TlsFront:
    """Terminates TLS on a port of its own and forwards bytes to ``backend``."""

    def __init__(self, folder, backend_port):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(os.path.join(folder, "server.crt"),
                                     os.path.join(folder, "server.key"))
        self.backend_port = backend_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        backend = socket.create_connection(("127.0.0.1", self.backend_port))

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(backend, conn), daemon=True).start()
        pump(conn, backend)

    def stop(self):
        self.stopping = True
        self.listener.close()


def test_a_home_ca_is_trusted_through_ca_bundle(server, tmp_path, capsys):
    certs = tmp_path / "certs"
    certs.mkdir()
    bundle = make_ca_and_cert(str(certs))
    front = TlsFront(str(certs), int(server.url.rsplit(":", 1)[1]))
    https = f"https://127.0.0.1:{front.port}"
    try:
        folder = tmp_path / "a"
        capsys.readouterr()
        assert cli.main(["init", str(folder), "--server", https,
                         "--token", server.user_token()]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"sync: the certificate of {https} is not trusted")
        assert "give its certificate with --ca-bundle FILE" in err
        assert len(err.splitlines()) == 1
        assert not folder.exists() or not (folder / ".sync").exists()

        assert cli.main(["init", str(folder), "--server", https, "--ca-bundle", bundle,
                         "--token", server.user_token(), "--device-name", "Laptop"]) == 0
        write(folder, "notes.txt", b"over TLS")
        assert sync(folder) == 0
        other = tmp_path / "b"
        init(server, other, "Other laptop")            # plain HTTP, same server
        assert sync(other) == 0 and read(other, "notes.txt") == b"over TLS"
    finally:
        front.stop()
