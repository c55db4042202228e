"""The private CA of `--listen` (stack/tls.py): it signs only for the listen address, so its
key, if stolen, cannot impersonate another site to the phones that trust it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from stack.tls import ensure_certificates, subject_alt_names


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True)


def _forge(tls: Path, san: str) -> Path:
    """A server certificate for `san` signed with the CA's own key."""
    key, csr, ext, cert = (tls / f"forged.{x}" for x in ("key", "csr", "ext", "pem"))
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    _openssl("req", "-new", "-key", str(key), "-subj", "/CN=forged", "-out", str(csr))
    ext.write_text(f"subjectAltName={san}\n")
    done = _openssl("x509", "-req", "-in", str(csr), "-CA", str(tls / "ca.pem"),
                    "-CAkey", str(tls / "ca-key.pem"), "-CAcreateserial", "-days", "30",
                    "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return cert


def test_the_ca_signs_only_for_the_listen_address(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path, "127.0.0.2")
    assert files.ca is not None
    ok = _openssl("verify", "-CAfile", str(files.ca), str(files.cert))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for other in ("IP:10.1.2.3", "DNS:bank.example.com"):
        forged = _openssl("verify", "-CAfile", str(files.ca), str(_forge(tmp_path, other)))
        assert forged.returncode != 0 and "subtree" in (forged.stdout + forged.stderr), other


def test_a_second_start_keeps_the_files_and_a_new_address_makes_new_ones(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path, "127.0.0.2")
    assert first.ca is not None
    ca_pem, cert_pem = first.ca.read_bytes(), first.cert.read_bytes()
    again = ensure_certificates(tmp_path, "127.0.0.2")
    assert again.ca is not None
    assert (again.ca.read_bytes(), again.cert.read_bytes()) == (ca_pem, cert_pem)
    moved = ensure_certificates(tmp_path, "127.0.0.3")
    assert moved.ca is not None and moved.ca.read_bytes() != ca_pem
    assert _openssl("verify", "-CAfile", str(moved.ca), str(moved.cert)).returncode == 0


def test_a_wildcard_names_only_addresses_a_phone_can_reach() -> None:
    sans = subject_alt_names("0.0.0.0")
    assert sans[0].startswith("DNS:")
    assert not [s for s in sans if s.startswith(("IP:127.", "IP:::1", "IP:fe80"))], sans
