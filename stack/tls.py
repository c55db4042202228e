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
RENEW_BEFORE_S = 30 * 24 * 3600  # a server certificate this close to its end is made again


class TlsError(RuntimeError):
    """The certificates could not be made or the operator's are missing."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path  # the server's certificate (the chain to present)
    key: Path
    ca: Path | None  # the private CA phones install; None with the operator's own certificate


def subject_alt_names(listen: str) -> list[str]:
    """What a phone may call the server: the address itself, or for a wildcard the host's name
    and the addresses it resolves to that a phone could reach (not loopback, not link-local)."""
    try:
        ip = ipaddress.ip_address(listen)
    except ValueError:
        return [f"DNS:{listen}"]
    if not ip.is_unspecified:
        return [f"IP:{ip}"]
    name = socket.gethostname()
    names = [f"DNS:{name}"]
    try:
        found = {
            ipaddress.ip_address(a[4][0].split("%")[0]) for a in socket.getaddrinfo(name, None)
        }
    except OSError:
        found = set()
    return names + sorted(f"IP:{a}" for a in found if not (a.is_loopback or a.is_link_local))


def _constraints(sans: list[str]) -> str:
    """The CA may sign only for these names: a stolen CA key cannot impersonate other sites to
    the phones that trust it."""
    permitted = []
    for san in sans:
        kind, value = san.split(":", 1)
        if kind == "IP":
            ip = ipaddress.ip_address(value)
            mask = "255.255.255.255" if ip.version == 4 else "FFFF:" * 7 + "FFFF"
            permitted.append(f"permitted;IP:{ip}/{mask}")
        else:
            permitted.append(f"permitted;DNS:{value}")
    # a name type without a permitted subtree would be unconstrained (RFC 5280): name one
    # that matches nothing a phone asks for
    if not any(san.startswith("DNS:") for san in sans):
        permitted.append("permitted;DNS:invalid")  # RFC 2606: never a real name
    if not any(san.startswith("IP:") for san in sans):
        permitted.append("permitted;IP:0.0.0.0/255.255.255.255")
        permitted.append("permitted;IP:::/" + "FFFF:" * 7 + "FFFF")
    return "nameConstraints=critical," + ",".join(permitted)


def _expires_within(cert: Path, seconds: int) -> bool:
    done = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-checkend", str(seconds)],
        capture_output=True,
    )
    return done.returncode != 0


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
                raise TlsError(f"{path} does not exist (--tls-cert / --tls-key)")
        if key.stat().st_mode & 0o077:
            log.warning("%s may be read by others: chmod 600 %s", key, key)
        return TlsFiles(cert, key, None)
    tls_dir.mkdir(parents=True, exist_ok=True)
    tls_dir.chmod(0o700)
    sans = subject_alt_names(listen)
    ca_key, ca, ca_for = tls_dir / "ca-key.pem", tls_dir / "ca.pem", tls_dir / "ca.san"
    wanted = ",".join(sans)
    if not (ca_key.exists() and ca.exists() and _read(ca_for) == wanted):
        if ca.exists():
            log.warning("the listen address changed: a new private CA; install %s again", ca)
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", str(ca_key))  # fmt: skip
        _openssl("req", "-x509", "-new", "-key", str(ca_key), "-sha256", "-days", str(CA_DAYS),
                 "-subj", "/O=SiteWatch/CN=SiteWatch private CA", "-out", str(ca),
                 "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-addext", _constraints(sans))  # fmt: skip
        ca_for.write_text(wanted)
        log.info("made a private CA for %s: %s (install it on the phones)", wanted, ca)
    cert, key = tls_dir / "server.pem", tls_dir / "server-key.pem"
    made_for = tls_dir / "server.san"
    stale = (
        not (cert.exists() and key.exists())
        or _read(made_for) != wanted
        or cert.stat().st_mtime < ca.stat().st_mtime  # signed by an earlier CA
        or _expires_within(cert, RENEW_BEFORE_S)
    )
    if stale:
        csr, ext = tls_dir / "server.csr", tls_dir / "server.ext"
        serial = tls_dir / "ca.srl"
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", str(key))  # fmt: skip
        _openssl("req", "-new", "-key", str(key), "-subj", "/O=SiteWatch/CN=SiteWatch",
                 "-out", str(csr))  # fmt: skip
        ext.write_text(
            f"subjectAltName={wanted}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        )
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                 "-CAcreateserial", "-CAserial", str(serial), "-days", str(SERVER_DAYS), "-sha256",
                 "-extfile", str(ext), "-out", str(cert))  # fmt: skip
        made_for.write_text(wanted)
        csr.unlink()
        log.info("made a server certificate for %s", wanted)
    for secret in (ca_key, key):
        secret.chmod(0o600)
    return TlsFiles(cert, key, ca)


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None
