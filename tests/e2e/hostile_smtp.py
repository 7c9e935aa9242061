"""A deliberately unhelpful SMTP server on loopback, for the at-most-once tests.

aiosmtpd answers politely; the failures that cause duplicates are rude: a server that takes
the whole message (its final "." arrives) and then drops the connection or never answers, or
one that trickles "220-" lines forever. This one speaks just enough SMTP over a raw socket,
one thread per connection, and keeps every message whose final "." it read, which is what a
real server would hold and deliver, answered or not.
"""

from __future__ import annotations

import email
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .smtp_server import loopback_listener

# What to do once a message's final "." has been read: answer, hang up, or say nothing.
ACCEPT, DROP, STALL = "accept", "drop", "stall"


@dataclass
class HostileSmtp:
    """`after_data(n)` decides for the n-th message (from 0); `trickle` greets forever."""

    pipelining: bool = True
    after_data: Callable[[int], str] = lambda n: ACCEPT
    stall_seconds: float = 30.0
    trickle: bool = False
    reply_delay: float = 0.0  # a slow server: seconds before each "250 queued"
    messages: list[bytes] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self.listener = loopback_listener()
        self.port = int(self.listener.getsockname()[1])
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.listener.close()

    def keys(self) -> Counter[tuple[str, str, str]]:
        """(campaign, step, recipient) of every message the server holds, counted."""
        held: Counter[tuple[str, str, str]] = Counter()
        for data in self.messages:
            message = email.message_from_bytes(data)
            held[(str(message["X-Ldmail-Campaign"]), str(message["X-Ldmail-Step"]),
                  str(message["To"]).rsplit("<", 1)[-1].rstrip(">").lower())] += 1
        return held

    def _accept(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(60)
        reader = conn.makefile("rb")
        try:
            if self.trickle:
                while not self.done.is_set():
                    conn.sendall(b"220-still getting ready\r\n")
                    time.sleep(0.3)
                return
            conn.sendall(b"220 hostile.test ESMTP\r\n")
            while not self.done.is_set():
                line = reader.readline()
                if not line:
                    return
                verb = line.split(b" ", 1)[0].split(b":", 1)[0].strip().upper()
                if verb == b"EHLO":
                    extensions = [b"hostile.test", b"SIZE 10000000", b"8BITMIME"]
                    if self.pipelining:
                        extensions.append(b"PIPELINING")
                    lines = [b"250-" + e for e in extensions[:-1]] + [b"250 " + extensions[-1]]
                    conn.sendall(b"\r\n".join(lines) + b"\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    data = b""
                    while True:
                        chunk = reader.readline()
                        if not chunk:
                            return
                        if chunk == b".\r\n":
                            break
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    with self.lock:
                        number = len(self.messages)
                        self.messages.append(data)
                    action = self.after_data(number)
                    if action == DROP:
                        return
                    if action == STALL:
                        self.done.wait(self.stall_seconds)
                        return
                    time.sleep(self.reply_delay)
                    conn.sendall(b"250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:  # MAIL, RCPT, RSET, NOOP, HELO
                    conn.sendall(b"250 OK\r\n")
        except OSError:
            return
        finally:
            reader.close()
            conn.close()
