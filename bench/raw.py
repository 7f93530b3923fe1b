"""The baseline: the fastest plain sender we can write, to hold mailer's figures against.

Forked processes, each with its SMTP connection open and its key loaded before the
clock starts; the same message bytes as mailer's; the clock stops when the last
message is accepted. With a key, each message is DKIM-signed the cheapest honest
way (a SHA-256 of the body and one signature over the headers, through OpenSSL),
because every reader's copy needs its own signature.
"""

from __future__ import annotations

import base64
import hashlib
import os
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding

ROOT = Path(__file__).resolve().parent.parent


def _signer(pem: bytes | None):
    if pem is None:
        return None
    key = serialization.load_pem_private_key(pem, password=None)

    def sign(head: bytes, body: bytes) -> bytes:
        bh = base64.b64encode(hashlib.sha256(body).digest())
        value = (
            b" v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=bench;"
            b" h=from:to:subject:date:message-id; bh=" + bh + b"; b="
        )
        data = head + b"dkim-signature:" + value
        if isinstance(key, ed25519.Ed25519PrivateKey):
            signature = key.sign(hashlib.sha256(data).digest())
        else:
            signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
        return b"DKIM-Signature:" + value + base64.b64encode(signature) + b"\r\n"

    return sign


def _sender(port: int, data: bytes, count: int, pems: list[bytes], ready: int, go: int) -> float:
    """One sending process: connect and load the keys, say so, wait for the start, send."""
    smtp = smtplib.SMTP("127.0.0.1", port)
    smtp.ehlo()
    signers = [s for s in (_signer(p) for p in pems) if s is not None]
    head, _, body = data.partition(b"\r\n\r\n")
    os.write(ready, b".")
    os.read(go, 1)
    for n in range(count):
        message = data
        if signers:
            # Each reader's copy differs, so each is hashed and signed on its own.
            message = b"".join(sign(head, body) for sign in signers) + data
        smtp.sendmail("news@example.org", [f"raw{n}@example.org"], message)
    ended = time.perf_counter()
    smtp.quit()
    return ended


def raw_baseline(
    port: int, data: bytes, processes: int, messages: int, pems: list[bytes] | None = None
) -> float:
    """Messages per second of forked plain-smtplib senders on the same sink.

    os.fork, not multiprocessing: its after-fork hooks would make each child close the
    parent's broker connections (kombu registers them) and hang there.
    """
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    per_process = messages // processes
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:  # the child: send, report when the last message was accepted, leave
            code = 1
            try:
                ended = _sender(port, data, per_process, pems or [], ready_w, go_r)
                os.write(done_w, f"{ended!r}\n".encode())
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    # The parent keeps only its own ends: a child that dies shows as an early end of file.
    for fd in (ready_w, go_r, done_w):
        os.close(fd)
    for _ in range(processes):
        if not os.read(ready_r, 1):
            raise SystemExit("a raw sender could not connect to the sink")
    began = time.perf_counter()
    os.write(go_w, b"." * processes)
    with os.fdopen(done_r) as done:
        ends = [float(line) for line in done]
    for pid in children:
        os.waitpid(pid, 0)
    os.close(ready_r)
    os.close(go_w)
    if len(ends) != processes:
        raise SystemExit("a raw sender died before it finished")
    return per_process * processes / (max(ends) - began)


def run_in_fresh_process(
    port: int, data: bytes, processes: int, messages: int, pems: list[Path] | None = None
) -> float:
    """raw_baseline in a new interpreter that imports nothing of mailer, Celery or Flask."""
    with tempfile.NamedTemporaryFile(suffix=".eml", delete=False) as message:
        message.write(data)
    try:
        args = [sys.executable, "-m", "bench.raw", str(port), message.name, str(processes)]
        args += [str(messages), *(str(p) for p in pems or [])]
        out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True)
        return float(out.stdout.strip())
    finally:
        os.unlink(message.name)


if __name__ == "__main__":
    # python -m bench.raw PORT MESSAGE_FILE PROCESSES MESSAGES [KEY_PEM ...]
    port, path, processes, count, *keys = sys.argv[1:]
    rate = raw_baseline(
        int(port),
        Path(path).read_bytes(),
        int(processes),
        int(count),
        [Path(k).read_bytes() for k in keys],
    )
    print(f"{rate:.1f}")
