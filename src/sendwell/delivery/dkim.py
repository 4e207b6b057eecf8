"""DKIM signing (RFC 6376, relaxed/relaxed) on `cryptography`: RSA-SHA256 and Ed25519-SHA256."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

if TYPE_CHECKING:
    from sendwell.config import Settings

# RFC 8058 §4: List-Unsubscribe and List-Unsubscribe-Post must be covered by the signature.
DEFAULT_SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
    "feedback-id",
)

# RFC 6376 §5.4, §8.15: signed once more than present, so nobody can add a second one above
# ours that a mail client would show or act on (a From, or an unsubscribe target of their own).
_OVER_SIGNED = frozenset((b"from", b"list-unsubscribe", b"list-unsubscribe-post"))

# RFC 6376 §3.3.3 asks for ≥ 1024 bits; mailbox providers reject less (COMPLIANCE.md row 23).
MIN_RSA_BITS = 1024
MAX_LINE = 78  # RFC 5322 §2.1.1: lines SHOULD be no more than 78 characters

_DNS_NAME = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*$")

_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


# ---- keys ---------------------------------------------------------------


def generate_private_key(kind: str = "rsa", bits: int = 2048) -> bytes:
    """Generate a DKIM private key ("rsa" or "ed25519") as unencrypted PKCS#8 PEM."""
    if kind == "rsa":
        if bits < MIN_RSA_BITS:
            raise ValueError(f"RSA DKIM keys must have at least {MIN_RSA_BITS} bits (got {bits}); use 2048")
        key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unknown DKIM key kind {kind!r}: use 'rsa' or 'ed25519'")
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(private_key_pem: bytes, source: str = "private_key_pem") -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"{source} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise ValueError(f"{source}: DKIM needs an RSA or Ed25519 key, got {type(key).__name__}")
    return key


def key_bits(private_key_pem: bytes) -> int:
    """Size of the key in bits (256 for Ed25519)."""
    key = _load_key(private_key_pem)
    return key.key_size if isinstance(key, rsa.RSAPrivateKey) else 256


def _key_tag(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return "rsa" if isinstance(key, rsa.RSAPrivateKey) else "ed25519"


def _public_b64(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    pub = key.public_key()
    if isinstance(pub, ed25519.Ed25519PublicKey):
        # RFC 8463 §4.2: p= is the bare 32-byte public key, not an ASN.1 structure.
        der = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        # RFC 6376 §3.6.1 / common practice (opendkim-genkey): SubjectPublicKeyInfo DER.
        der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def public_key_b64(private_key_pem: bytes) -> str:
    """The base64 p= value of the DNS key record for this private key."""
    return _public_b64(_load_key(private_key_pem))


def dns_record(*, domain: str, selector: str, private_key_pem: bytes) -> str:
    """The DNS TXT record, e.g. `S._domainkey.D. TXT "v=DKIM1; k=rsa; p=..."`, on one line."""
    return _record_for(domain, selector, _load_key(private_key_pem))


def _record_for(domain: str, selector: str, key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    text = f"v=DKIM1; k={_key_tag(key)}; p={_public_b64(key)}"
    # RFC 1035 §3.3: one character-string holds ≤ 255 octets; RFC 6376 §3.6.2.2: a
    # verifier concatenates the strings of a TXT record, so long keys are split.
    chunks = [text[i : i + 255] for i in range(0, len(text), 255)]
    quoted = " ".join(f'"{c}"' for c in chunks)
    return f"{selector}._domainkey.{domain.rstrip('.')}. TXT {quoted}"


# ---- canonicalisation (RFC 6376 §3.4) -----------------------------------


def _normalise_newlines(data: bytes) -> bytes:
    # Callers may hand us LF-only text; the signed form is what SMTP carries: CRLF (RFC 5321 §2.3.8).
    lf = data.count(b"\n")
    if lf == 0 or data.count(b"\r\n") == lf:
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _collapse_wsp(data: bytes) -> bytes:
    """Every run of SP / HTAB becomes one SP (RFC 6376 §3.4.2 and §3.4.4)."""
    # bytes.replace runs at memory speed; a regex pays per space, and text is full of
    # single spaces. Each pass halves the longest run, so n spaces take log2(n) passes.
    if b"\t" in data:
        data = data.replace(b"\t", b" ")
    while b"  " in data:
        data = data.replace(b"  ", b" ")
    return data


def _relaxed_value(value: bytes) -> bytes:
    # RFC 6376 §3.4.2: unfold, reduce WSP runs to one SP, drop WSP at both ends of the value.
    if b"\r\n" in value:
        value = value.replace(b"\r\n", b"")
    return _collapse_wsp(value).strip(b" ")


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """One header field in relaxed canonical form, without the trailing CRLF (RFC 6376 §3.4.2)."""
    return name.strip(b" \t").lower() + b":" + _relaxed_value(value)


def relaxed_body(body: bytes) -> bytes:
    """The body in relaxed canonical form (RFC 6376 §3.4.4); expects CRLF line endings."""
    if not body:
        return b""
    body = _collapse_wsp(body)
    # A body that does not end in CRLF gets one on the wire (SMTP DATA is line based,
    # RFC 5321 §4.1.1.4), so sign what the verifier will see: the last line terminated.
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    # §3.4.4 a: whitespace at the end of lines is ignored (runs are already one SP).
    body = body.replace(b" \r\n", b"\r\n")
    # §3.4.4 b: empty lines at the end are ignored. Only whole CRLF pairs count, so a
    # stray CR before the final CRLF stays part of the content.
    stripped = body.rstrip(b"\r\n")
    tail = body[len(stripped) :]
    keep = len(tail)
    while keep >= 2 and tail[keep - 2 : keep] == b"\r\n":
        keep -= 2
    # §3.4.4: if the body is empty after this, nothing is hashed (not even a CRLF).
    return stripped + tail[:keep] + b"\r\n" if stripped or keep else b""


def _split_message(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Header fields as (lower-case name, raw value incl. folding) in order, and the body."""
    if message.startswith(b"\r\n"):
        return [], message[2:]
    end = message.find(b"\r\n\r\n")
    if end < 0:
        head, body = message, b""
    else:
        head, body = message[: end + 2], message[end + 4 :]
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if not line:
            continue
        if line[0] in b" \t":
            # RFC 5322 §2.2.3: a line starting with WSP continues the previous field.
            if not fields:
                raise ValueError(f"message starts with a continuation line: {line[:60]!r}")
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name.strip(b" \t"):
            raise ValueError(f"malformed header line (no field name and colon): {line[:60]!r}")
        fields.append((name.strip(b" \t").lower(), value))
    return fields, body


# ---- signing ------------------------------------------------------------


class _Prepared:
    """What every signature over one message shares: header fields and the body hash."""

    __slots__ = ("fields", "by_name", "bh")

    def __init__(self, message: bytes) -> None:
        message = _normalise_newlines(message)
        self.fields, body = _split_message(message)
        self.by_name: dict[bytes, list[int]] = {}
        for i, (name, _) in enumerate(self.fields):
            self.by_name.setdefault(name, []).append(i)
        if b"from" not in self.by_name:
            # RFC 6376 §5.4: From MUST be signed; a message without one cannot be.
            raise ValueError("cannot DKIM-sign a message without a From header")
        self.bh = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())


class DkimSigner:
    """Signs messages for one domain and selector with one key loaded once."""

    def __init__(
        self,
        *,
        domain: str,
        selector: str,
        private_key_pem: bytes,
        headers: Iterable[str] | None = None,
    ) -> None:
        if not _DNS_NAME.match(domain.rstrip(".")):
            raise ValueError(f"invalid DKIM domain {domain!r}")
        if not _DNS_NAME.match(selector):
            raise ValueError(f"invalid DKIM selector {selector!r}")
        self.domain = domain.rstrip(".")
        self.selector = selector
        self._key = _load_key(private_key_pem)
        if isinstance(self._key, rsa.RSAPrivateKey):
            if self._key.key_size < MIN_RSA_BITS:
                raise ValueError(
                    f"RSA DKIM key has {self._key.key_size} bits; at least {MIN_RSA_BITS} are required (use 2048)"
                )
            self.algorithm = "rsa-sha256"
            self._is_rsa = True
        else:
            self._is_rsa = False
            self.algorithm = "ed25519-sha256"  # RFC 8463 §3
        names = tuple(h.strip().lower() for h in (headers if headers is not None else DEFAULT_SIGNED_HEADERS))
        if "from" not in names:
            raise ValueError("the signed header list must include 'from' (RFC 6376 §5.4)")
        if "dkim-signature" in names:
            raise ValueError("'dkim-signature' cannot be in the signed header list")
        self.headers = tuple(dict.fromkeys(names))  # keep order, drop duplicates
        self._header_names = tuple(h.encode("ascii") for h in self.headers)
        self._layouts: dict[tuple[tuple[bytes, ...], int], tuple[tuple[bytes, ...], tuple[bytes, ...], int]] = {}
        # The constant tags are laid out once; only t=, h=, bh= and b= vary per message.
        self._fixed_tags = [
            b"v=1;",
            b"a=" + self.algorithm.encode() + b";",
            b"c=relaxed/relaxed;",
            b"d=" + self.domain.encode("ascii") + b";",
            b"s=" + selector.encode("ascii") + b";",
        ]

    @property
    def key_bits(self) -> int:
        """Key size in bits (256 for Ed25519)."""
        return self._key.key_size if isinstance(self._key, rsa.RSAPrivateKey) else 256

    def dns_record(self) -> str:
        """The DNS TXT record that publishes this signer's public key."""
        return _record_for(self.domain, self.selector, self._key)

    def sign(self, message: bytes, *, timestamp: int | None = None) -> bytes:
        """Return the `DKIM-Signature: ...\\r\\n` field to prepend to this message."""
        return self._sign_prepared(_Prepared(message), timestamp)

    def _sign_prepared(self, prepared: _Prepared, timestamp: int | None) -> bytes:
        fields, by_name = prepared.fields, prepared.by_name
        h_names: list[bytes] = []
        signed: list[bytes] = []
        for name in self._header_names:
            positions = by_name.get(name)
            if not positions:
                continue  # h= names only the fields this message carries
            # RFC 6376 §5.4.2: repeated fields are taken bottom-up, one per h= entry.
            for i in reversed(positions):
                signed.append(name + b":" + _relaxed_value(fields[i][1]))
                h_names.append(name)
            if name in _OVER_SIGNED:
                # RFC 6376 §8.15 oversigning: one more entry than present covers a
                # non-existent field, so a second one added later breaks the signature.
                # It adds nothing to the hashed data: the cost of a signature is unchanged.
                h_names.append(name)
        t = b"%d" % (int(time.time()) if timestamp is None else int(timestamp))
        text, canon, col = self._layout(tuple(h_names), len(t))
        bh = prepared.bh

        # RFC 6376 §3.7: the signature field itself is hashed last, with b= empty
        # and without its trailing CRLF.
        signed.append(canon[0] + t + canon[1] + bh + canon[2])
        data = b"\r\n".join(signed)
        if self._is_rsa:
            sig = self._key.sign(data, _PKCS1V15, _SHA256)
        else:
            # RFC 8463 §3: Ed25519 signs the SHA-256 hash of the header data (PureEdDSA).
            sig = self._key.sign(hashlib.sha256(data).digest())
        return b"".join((text[0], t, text[1], bh, text[2], _fold_b64(base64.b64encode(sig), col), b"\r\n"))

    def _layout(self, h_names: tuple[bytes, ...], t_len: int) -> tuple[tuple[bytes, ...], tuple[bytes, ...], int]:
        """The folded field up to `b=` and its canonical form, split where t= and bh= go.

        The layout depends only on which headers are signed and the width of t=, so it
        is computed once per combination instead of once per message.
        """
        key = (h_names, t_len)
        layout = self._layouts.get(key)
        if layout is not None:
            return layout
        # Placeholders of the real widths (bh= is always 44 base64 chars of SHA-256);
        # control bytes cannot occur in any tag, so splitting on them is unambiguous.
        t_mark, bh_mark = b"\x01" * t_len, b"\x02" * 44
        head = _Folder()
        head.add(b"DKIM-Signature:", space=False)
        for tag in self._fixed_tags:
            head.add(tag)
        head.add(b"t=" + t_mark + b";")
        head.add(b"h=" + h_names[0] + (b":" if len(h_names) > 1 else b";"))
        for j, name in enumerate(h_names[1:], 2):
            # RFC 6376 §3.5: FWS is allowed around the colons of h=, so fold after one.
            head.add(name + (b":" if j < len(h_names) else b";"), space=False)
        head.add(b"bh=" + bh_mark + b";")
        head.add(b"b=")
        template = head.text()
        name, _, value = template.partition(b":")
        canonical = relaxed_header(name, value)

        def split(data: bytes) -> tuple[bytes, ...]:
            before, _, rest = data.partition(t_mark)
            middle, _, after = rest.partition(bh_mark)
            return before, middle, after

        layout = (split(template), split(canonical), head.col)
        if len(self._layouts) >= 64:  # bounded: header combinations are few in practice
            self._layouts.clear()
        self._layouts[key] = layout
        return layout


class MultiSigner:
    """Adds several signatures (e.g. RSA-2048 and Ed25519, RFC 8463 §2) to one message."""

    def __init__(self, signers: Sequence[DkimSigner]) -> None:
        if not signers:
            raise ValueError("MultiSigner needs at least one DkimSigner")
        self.signers = tuple(signers)

    def sign(self, message: bytes, *, timestamp: int | None = None) -> bytes:
        """Return all `DKIM-Signature` fields, to prepend to the message together."""
        prepared = _Prepared(message)  # parse and hash the body once for all signatures
        t = int(time.time()) if timestamp is None else timestamp
        return b"".join(s._sign_prepared(prepared, t) for s in self.signers)


class _Folder:
    """Lays out header text in lines of ≤ 78 characters (RFC 5322 §2.2.3 folding)."""

    __slots__ = ("parts", "col")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.col = 0

    def add(self, token: bytes, *, space: bool = True) -> None:
        sep = b" " if space else b""
        if self.col and self.col + len(sep) + len(token) > MAX_LINE:
            self.parts.append(b"\r\n ")
            self.col = 1
        else:
            self.parts.append(sep)
            self.col += len(sep)
        self.parts.append(token)
        self.col += len(token)

    def text(self) -> bytes:
        return b"".join(self.parts)


def _fold_b64(value: bytes, col: int) -> bytes:
    """Continue a header line at column `col` with base64, filling lines to 78 columns."""
    # base64 may be folded anywhere (RFC 6376 §3.5: b= allows FWS between characters).
    room = max(MAX_LINE - col, 0)
    parts = [value[:room]]
    for pos in range(room, len(value), MAX_LINE - 1):
        parts.append(value[pos : pos + MAX_LINE - 1])
    return b"\r\n ".join(parts) if room else b"\r\n " + b"\r\n ".join(parts[1:])


# ---- settings -------------------------------------------------------------


def key_path(settings: Settings) -> Path:
    """Where the configured key file is, relative paths taken from the working directory."""
    return Path(settings.dkim_key_file).expanduser()


def _read_key(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"DKIM key file {path} does not exist ({variable})") from None
    except OSError as exc:
        raise ValueError(f"DKIM key file {path} cannot be read: {exc.strerror}") from exc


def load_signer(settings: Settings) -> DkimSigner | MultiSigner | None:
    """The signer for the configured DKIM key(s), or None when DKIM is not configured.

    With SENDWELL_DKIM_ED25519_KEY_FILE as well, each mail carries two signatures, RSA
    first and Ed25519 second (RFC 8463 §2: verifiers without Ed25519 use the RSA one).
    """
    if not settings.dkim_domain or not settings.dkim_key_file:
        return None
    path = key_path(settings)
    pem = _read_key(path, "SENDWELL_DKIM_KEY_FILE")
    try:
        primary = DkimSigner(domain=settings.dkim_domain, selector=settings.dkim_selector, private_key_pem=pem)
    except ValueError as exc:
        raise ValueError(f"DKIM key file {path}: {exc}") from exc
    if not settings.dkim_ed25519_key_file:
        return primary
    ed_path = Path(settings.dkim_ed25519_key_file).expanduser()
    ed_pem = _read_key(ed_path, "SENDWELL_DKIM_ED25519_KEY_FILE")
    selector = settings.dkim_ed25519_selector or f"{settings.dkim_selector}-ed"
    try:
        second = DkimSigner(domain=settings.dkim_domain, selector=selector, private_key_pem=ed_pem)
    except ValueError as exc:
        raise ValueError(f"DKIM key file {ed_path}: {exc}") from exc
    if second.algorithm != "ed25519-sha256":
        raise ValueError(f"DKIM key file {ed_path} (SENDWELL_DKIM_ED25519_KEY_FILE) is not an Ed25519 key")
    return MultiSigner([primary, second])
