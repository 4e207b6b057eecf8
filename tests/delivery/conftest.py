"""Keys and an offline dkimpy verifier shared by the DKIM tests."""

from __future__ import annotations

import base64
import re
from types import SimpleNamespace

import dkim as dkimpy
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sendwell.delivery.dkim import generate_private_key


@pytest.fixture(scope="session")
def rsa_pem() -> bytes:
    return generate_private_key("rsa", 2048)


@pytest.fixture(scope="session")
def ed25519_pem() -> bytes:
    return generate_private_key("ed25519")


def _txt_content(record: str) -> bytes:
    """What a resolver hands a verifier: the TXT record's strings concatenated (RFC 6376 §3.6.2.2)."""
    return "".join(re.findall(r'"([^"]*)"', record.split(" TXT ", 1)[1])).encode("ascii")


def _dnsfunc_for(*records: str):
    """An offline dkimpy `dnsfunc` answering for the given dns_record() lines only."""
    table = {r.split(" ", 1)[0].encode(): _txt_content(r) for r in records}

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return table.get(name)

    return dnsfunc


@pytest.fixture
def verify():
    """verify(message, *dns_records, idx=0): dkimpy's verdict on the idx-th DKIM-Signature."""

    def _verify(message: bytes, *records: str, idx: int = 0) -> bool:
        try:
            return dkimpy.DKIM(message).verify(idx=idx, dnsfunc=_dnsfunc_for(*records))
        except dkimpy.DKIMException:  # e.g. body hash mismatch: dkim.verify() maps these to False too
            return False

    return _verify


class _BadSignatureError(Exception):
    pass


class _VerifyKey:
    """The slice of PyNaCl's VerifyKey that dkimpy calls, done by `cryptography`."""

    def __init__(self, key: bytes, encoder=None) -> None:
        self._key = Ed25519PublicKey.from_public_bytes(encoder.decode(key) if encoder else key)

    def verify(self, message: bytes, signature: bytes) -> bytes:
        try:
            self._key.verify(signature, message)
        except InvalidSignature as exc:
            raise _BadSignatureError(str(exc)) from exc
        return message


_NACL_SHIM = SimpleNamespace(
    signing=SimpleNamespace(VerifyKey=_VerifyKey),
    encoding=SimpleNamespace(Base64Encoder=SimpleNamespace(decode=base64.b64decode)),
    exceptions=SimpleNamespace(ValueError=ValueError, BadSignatureError=_BadSignatureError),
)


@pytest.fixture
def dkimpy_ed25519(monkeypatch):
    """dkimpy able to verify ed25519-sha256.

    PyNaCl is not installed here, and dkimpy needs it only for the raw Ed25519 check;
    parsing, canonicalisation, header selection and the body hash stay dkimpy's own.
    """
    if not hasattr(dkimpy, "nacl"):
        monkeypatch.setattr(dkimpy, "nacl", _NACL_SHIM, raising=False)
    return dkimpy
