"""DKIM signing speed: Sendwell's DkimSigner vs dkimpy vs the raw RSA-2048 sign ceiling, same run.

    .venv/bin/python bench/dkim.py [--seconds 3] [--rounds 3]

Each contender runs `seconds` in total, split into `rounds` slices interleaved with the
others, so a noisy neighbour on this shared machine hits all of them alike (BENCHMARKS.md).
Writes bench/results/dkim.json.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from email.charset import QP, Charset
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from pathlib import Path

# Run as a script, this file's folder is sys.path[0] and this file would shadow dkimpy's `dkim`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import cryptography  # noqa: E402
import dkim as dkimpy  # noqa: E402
from cryptography.hazmat.backends.openssl import backend  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402

from sendwell.delivery.dkim import DEFAULT_SIGNED_HEADERS, DkimSigner, dns_record, generate_private_key  # noqa: E402

DOMAIN = "bright-lighting.example"
SELECTOR = "bench"
TARGET_BYTES = 5 * 1024


def build_message(target: int = TARGET_BYTES) -> bytes:
    """A campaign-like text+HTML message of about `target` bytes."""
    paragraph = (
        "Our new T8 LED tubes carry CE marking and meet the EU ecodesign rules; samples ship "
        "from Ningbo within 7 days.  Reply to this mail for the price list.\n"
    )
    text_body, html_body = "", ""
    while True:
        msg = MIMEMultipart("alternative")
        msg["From"] = "Ningbo Bright Lighting <sales@bright-lighting.example>"
        msg["To"] = "Buyer <buyer@importer.example.de>"
        msg["Subject"] = "New T8 LED tubes with CE marking"
        msg["Date"] = "Tue, 03 Mar 2026 09:00:00 +0800"
        msg["Message-ID"] = "<20260303090000.123@bright-lighting.example>"
        msg["List-Unsubscribe"] = (
            "<https://mail.bright-lighting.example/u/eyJjIjoxMjMsInQiOiJhYmNkZWYwMTIzNDU2Nzg5In0.sig>, "
            "<mailto:unsubscribe+eyJjIjoxMjMsInQiOiJhYmNkZWYwMTIzNDU2Nzg5In0@bright-lighting.example>"
        )
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["List-Id"] = "Newsletter <newsletter.bright-lighting.example>"
        msg["Feedback-ID"] = "123:newsletter:sendwell"
        qp = Charset("utf-8")
        qp.body_encoding = QP
        msg.attach(MIMEText(text_body + "Unsubscribe: https://mail.bright-lighting.example/u/x\n", "plain", qp))
        msg.attach(MIMEText(f"<html><body>{html_body}<a href='https://x'>Unsubscribe</a></body></html>\n", "html", qp))
        data = msg.as_bytes(policy=compat32.clone(linesep="\r\n"))
        if len(data) >= target:
            return data
        text_body += paragraph
        html_body += f"<p>{paragraph.strip()}</p>\n"


def timed(fn, seconds: float) -> tuple[int, float]:
    """Call fn repeatedly for about `seconds`; return (calls, elapsed)."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(10):
            fn()
        n += 10
        now = time.perf_counter()
        if now >= deadline:
            return n, now - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="total time per contender")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved slices per contender")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "dkim.json")
    args = parser.parse_args()

    pem = generate_private_key("rsa", 2048)
    ed_pem = generate_private_key("ed25519")
    key = serialization.load_pem_private_key(pem, password=None)
    message = build_message()
    signer = DkimSigner(domain=DOMAIN, selector=SELECTOR, private_key_pem=pem)
    ed_signer = DkimSigner(domain=DOMAIN, selector="ed", private_key_pem=ed_pem)
    include = [h.encode() for h in DEFAULT_SIGNED_HEADERS]

    # Sanity first: both signers must produce signatures dkimpy accepts, or the race is moot.
    record = dns_record(domain=DOMAIN, selector=SELECTOR, private_key_pem=pem)
    txt = "".join(record.split(" TXT ", 1)[1].split('"')[1::2]).encode()
    dns = lambda name, timeout=5: txt  # noqa: E731  offline DNS
    assert dkimpy.verify(signer.sign(message) + message, dnsfunc=dns), "DkimSigner output does not verify"
    theirs = dkimpy.sign(message, SELECTOR.encode(), DOMAIN.encode(), pem,
                         canonicalize=(b"relaxed", b"relaxed"), include_headers=include)
    assert dkimpy.verify(theirs + message, dnsfunc=dns), "dkimpy output does not verify"

    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
    digest_input = b"\0" * 32
    contenders = {
        # The ceiling: one RSA-2048 PKCS#1 v1.5 signature through cryptography/OpenSSL.
        "rsa2048_raw_sign": lambda: key.sign(digest_input, pkcs1, sha256),
        "sendwell_dkim_rsa2048": lambda: signer.sign(message),
        "dkimpy_rsa2048": lambda: dkimpy.sign(
            message, SELECTOR.encode(), DOMAIN.encode(), pem,
            canonicalize=(b"relaxed", b"relaxed"), include_headers=include,
        ),
        "sendwell_dkim_ed25519": lambda: ed_signer.sign(message),
    }
    totals = {name: [0, 0.0] for name in contenders}
    slice_s = args.seconds / args.rounds
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            n, elapsed = timed(fn, slice_s)
            totals[name][0] += n
            totals[name][1] += elapsed

    rates = {name: n / elapsed for name, (n, elapsed) in totals.items()}
    ratios = {
        "sendwell_vs_raw_sign_ceiling": rates["sendwell_dkim_rsa2048"] / rates["rsa2048_raw_sign"],
        "sendwell_vs_dkimpy": rates["sendwell_dkim_rsa2048"] / rates["dkimpy_rsa2048"],
        "dkimpy_vs_raw_sign_ceiling": rates["dkimpy_rsa2048"] / rates["rsa2048_raw_sign"],
    }

    print(f"message: {len(message)} bytes, {args.rounds} interleaved rounds, {args.seconds:g} s per contender")
    for name, (n, elapsed) in totals.items():
        print(f"  {name:24s} {rates[name]:10.1f} signs/s   ({n} in {elapsed:.2f} s)")
    print(f"  DkimSigner / raw RSA-2048 sign ceiling: {ratios['sendwell_vs_raw_sign_ceiling']:.3f}")
    print(f"  DkimSigner / dkimpy:                    {ratios['sendwell_vs_dkimpy']:.1f}x")
    print(f"  dkimpy / raw RSA-2048 sign ceiling:     {ratios['dkimpy_vs_raw_sign_ceiling']:.3f}")

    result = {
        "benchmark": "dkim",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "cryptography": cryptography.__version__,
            "openssl": backend.openssl_version_text(),
            "dkimpy": importlib.metadata.version("dkimpy"),
        },
        "message_bytes": len(message),
        "seconds_per_contender": args.seconds,
        "rounds": args.rounds,
        "signs_per_second": {k: round(v, 1) for k, v in rates.items()},
        "ratios": {k: round(v, 4) for k, v in ratios.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
