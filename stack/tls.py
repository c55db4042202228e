"""Certificates for `sitewatch up --listen ADDR` (CONTRACT §6.1): the operator's own
(`--tls-cert`/`--tls-key`, or SITEWATCH_TLS_CERT_FILE and SITEWATCH_TLS_KEY_FILE), or a private
CA made once under DATA_DIR/secrets and a server certificate it signs for ADDR, made again when
ADDR changes. Phones trust the CA (`DATA_DIR/secrets/ca.pem`): docs/security.md.

The openssl command line does the cryptography (Debian's openssl, always installed)."""

from __future__ import annotations

import ipaddress
import logging
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("sitewatch.stack")

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity Apple's and Android's TLS stacks accept


class TlsError(RuntimeError):
    """The certificates could not be made or the operator's are missing."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path  # the server's certificate (the chain to present)
    key: Path
    ca: Path | None  # the private CA phones install; None with the operator's own certificate


def subject_alt_names(listen: str) -> list[str]:
    """What a phone may call the server: the address itself, or for a wildcard the host's name
    and the addresses it resolves to."""
    try:
        ip = ipaddress.ip_address(listen)
    except ValueError:
        return [f"DNS:{listen}"]
    if not ip.is_unspecified:
        return [f"IP:{ip}"]
    name = socket.gethostname()
    names = [f"DNS:{name}"]
    try:
        names += sorted({f"IP:{a[4][0]}" for a in socket.getaddrinfo(name, None)})
    except OSError:
        pass
    return names


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise TlsError(f"openssl {args[0]} failed: {done.stderr.strip()[-500:]}")


def ensure_certificates(
    tls_dir: Path, listen: str, cert_file: str = "", key_file: str = ""
) -> TlsFiles:
    if cert_file or key_file:
        cert, key = Path(cert_file), Path(key_file)
        for path in (cert, key):
            if not path.is_file():
                raise TlsError(f"{path} does not exist (SITEWATCH_TLS_CERT_FILE / _KEY_FILE)")
        return TlsFiles(cert, key, None)
    tls_dir.mkdir(parents=True, exist_ok=True)
    tls_dir.chmod(0o700)
    ca_key, ca = tls_dir / "ca-key.pem", tls_dir / "ca.pem"
    if not (ca_key.exists() and ca.exists()):
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", str(ca_key))  # fmt: skip
        _openssl("req", "-x509", "-new", "-key", str(ca_key), "-sha256", "-days", str(CA_DAYS),
                 "-subj", "/O=SiteWatch/CN=SiteWatch private CA", "-out", str(ca),
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
        log.info("made a private CA: %s (install it on the phones)", ca)
    sans = ",".join(subject_alt_names(listen))
    cert, key = tls_dir / "server.pem", tls_dir / "server-key.pem"
    made_for = tls_dir / "server.san"
    if not (cert.exists() and key.exists()) or made_for.read_text() != sans:
        csr, ext = tls_dir / "server.csr", tls_dir / "server.ext"
        serial = tls_dir / "ca.srl"
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", str(key))  # fmt: skip
        _openssl("req", "-new", "-key", str(key), "-subj", "/O=SiteWatch/CN=SiteWatch",
                 "-out", str(csr))  # fmt: skip
        ext.write_text(
            f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        )
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                 "-CAcreateserial", "-CAserial", str(serial), "-days", str(SERVER_DAYS), "-sha256",
                 "-extfile", str(ext), "-out", str(cert))  # fmt: skip
        made_for.write_text(sans)
        csr.unlink()
        log.info("made a server certificate for %s", sans)
    for secret in (ca_key, key):
        secret.chmod(0o600)
    return TlsFiles(cert, key, ca)
