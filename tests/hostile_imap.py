"""A stand-in for a hostile IMAP server on loopback, for what Dovecot will not do: answer BYE
after SELECT, send a 2 MB line or literal, trickle its answer one byte a second, or hang up
in the middle of a run. It speaks just enough IMAP4rev1 over a raw socket (socketserver, one
thread per connection) for imaplib to log in, select, search, fetch and log out.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from io import BufferedIOBase

# How the stand-in misbehaves.
BYE_AFTER_SELECT = "bye after select"
LONG_LINE = "2 MB line"
LONG_LITERAL = "2 MB literal"
TRICKLE = "trickle"  # the answer to SELECT, one byte a second, forever
TRICKLE_GREETING = "trickle greeting"  # the greeting, one byte a second, forever
BYE_ON_SECOND_FETCH = "bye on the second fetch"  # the first mail is served whole
TWO_MB = 2 * 1024 * 1024


@dataclass
class HostileImap:
    """`mode` says how it misbehaves; `mails` are what SEARCH and FETCH serve (UIDs 1, 2…)."""

    mode: str
    mails: list[bytes] = field(default_factory=list)
    trickling: threading.Event = field(default_factory=threading.Event)  # started to trickle

    def __post_init__(self) -> None:
        self.done = threading.Event()
        self.server = _Server(("127.0.0.1", 0), _Connection)
        self.server.stand_in = self
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True).start()

    def close(self) -> None:
        self.done.set()
        self.server.shutdown()
        self.server.server_close()

    def serve(self, conn: socket.socket, reader: BufferedIOBase) -> None:
        fetches = 0
        try:
            if self.mode == TRICKLE_GREETING:
                self._trickle(conn)
                return
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1] stand-in ready\r\n")
            while not self.done.is_set():
                line = reader.readline()
                if not line:
                    return
                tag, _, rest = line.decode().strip().partition(" ")
                command = rest.split(" ")[0].upper()
                if command == "UID":
                    command = "UID " + rest.split(" ")[1].upper()
                if command == "SELECT" and self.mode != BYE_ON_SECOND_FETCH:
                    self._misbehave(conn, tag)
                    return
                if command == "UID FETCH" and "BODY" in rest.upper():
                    fetches += 1
                    if fetches == 2 and self.mode == BYE_ON_SECOND_FETCH:
                        conn.sendall(b"* BYE shutting down\r\n")
                        return
                conn.sendall(self._answer(tag, command, rest) + f"{tag} OK done\r\n".encode())
                if command == "LOGOUT":
                    return
        except OSError:
            return

    def _answer(self, tag: str, command: str, rest: str) -> bytes:
        """The untagged part of a polite answer."""
        if command == "CAPABILITY":
            return b"* CAPABILITY IMAP4rev1\r\n"
        if command == "SELECT":
            return f"* {len(self.mails)} EXISTS\r\n".encode()
        if command == "UID SEARCH":
            return ("* SEARCH " + " ".join(str(n + 1) for n in range(len(self.mails)))
                    + "\r\n").encode()
        if command == "UID FETCH" and "RFC822.SIZE" in rest.upper():
            return b"".join(f"* {n + 1} FETCH (UID {n + 1} RFC822.SIZE {len(mail)})\r\n"
                            .encode() for n, mail in enumerate(self.mails))
        if command == "UID FETCH":
            uid = int(rest.split(" ")[2])
            mail = self.mails[uid - 1]
            return (f"* {uid} FETCH (UID {uid} BODY[] {{{len(mail)}}}\r\n".encode() + mail
                    + b")\r\n")
        if command == "LOGOUT":
            return b"* BYE logging out\r\n"
        return b""

    def _misbehave(self, conn: socket.socket, tag: str) -> None:
        if self.mode == BYE_AFTER_SELECT:
            conn.sendall(b"* BYE the server is going away\r\n")
        elif self.mode == LONG_LINE:
            conn.sendall(b"* OK " + b"x" * TWO_MB + b"\r\n" + f"{tag} OK done\r\n".encode())
        elif self.mode == LONG_LITERAL:
            conn.sendall(f"* OK {{{TWO_MB}}}\r\n".encode() + b"x" * TWO_MB + b"\r\n"
                         + f"{tag} OK done\r\n".encode())
        elif self.mode == TRICKLE:
            self._trickle(conn)

    def _trickle(self, conn: socket.socket) -> None:
        self.trickling.set()
        while not self.done.is_set():
            conn.sendall(b"*")
            time.sleep(1)


class _Server(socketserver.ThreadingTCPServer):
    """One thread per connection, none waited for at close."""

    daemon_threads = True
    block_on_close = False
    stand_in: HostileImap


class _Connection(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.stand_in.serve(self.connection, self.rfile)
