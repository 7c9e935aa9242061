"""A stand-in for a hostile IMAP server on loopback, for what Dovecot will not do: answer BYE
after SELECT, send a 2 MB line or literal, trickle its answer (or a STARTTLS handshake) one
byte a second, hang up in the middle of a run, keep a mail's size to itself, or hold more mails
than fit in a 1 MB SEARCH line. It speaks just enough IMAP4rev1 over a raw socket (socketserver, one
thread per connection) for imaplib to log in, select, search, fetch and log out.
"""

from __future__ import annotations

import re
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
POLITE = "polite"  # misbehaves only as `unsized` and `padding` say
STARTTLS_TRICKLE = "starttls trickle"  # OK to STARTTLS, then a handshake one byte a second
TLS_RECORD_START = b"\x16\x03\x03\x40\x00\x02\x00\x3f\xfc"  # a 16 kB ServerHello, begun
PADDING_SIZE = 999_999_999  # RFC822.SIZE of a padding mail: over any size bound, never fetched
TWO_MB = 2 * 1024 * 1024


@dataclass
class HostileImap:
    """`mode` says how it misbehaves; `mails` are what SEARCH and FETCH serve (UIDs 1, 2…);
    `unsized` UIDs have no RFC822.SIZE; `padding` more UIDs follow in SEARCH, each of
    PADDING_SIZE bytes."""

    mode: str
    mails: list[bytes] = field(default_factory=list)
    unsized: set[int] = field(default_factory=set)
    padding: int = 0
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
            conn.sendall(f"* OK [CAPABILITY {self._capabilities()}] stand-in ready\r\n".encode())
            while not self.done.is_set():
                line = reader.readline()
                if not line:
                    return
                tag, _, rest = line.decode().strip().partition(" ")
                command = rest.split(" ")[0].upper()
                if command == "UID":
                    command = "UID " + rest.split(" ")[1].upper()
                if command == "STARTTLS":
                    conn.sendall(f"{tag} OK begin TLS\r\n".encode())
                    reader.read(1)  # the ClientHello: imaplib reads no TLS byte with the line
                    conn.sendall(TLS_RECORD_START)
                    self._trickle(conn, b"\x00")
                    return
                if command == "SELECT" and self.mode not in (BYE_ON_SECOND_FETCH, POLITE):
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
            return f"* CAPABILITY {self._capabilities()}\r\n".encode()
        if command == "SELECT":
            return f"* {len(self.mails)} EXISTS\r\n".encode()
        uids = range(1, len(self.mails) + self.padding + 1)
        if command == "UID SEARCH":
            return ("* SEARCH " + " ".join(map(str, uids)) + "\r\n").encode()
        if command == "UID FETCH" and "RFC822.SIZE" in rest.upper():
            return "".join(f"* {uid} FETCH (UID {uid}{self._size(uid)})\r\n"
                           for uid in uids).encode()
        if command == "UID FETCH":
            uid = int(rest.split(" ")[2])
            partial = re.search(r"<0\.(\d+)>", rest)
            mail = self.mails[uid - 1][:int(partial[1]) if partial else None]
            origin = "<0>" if partial else ""
            return (f"* {uid} FETCH (UID {uid} BODY[]{origin} {{{len(mail)}}}\r\n".encode()
                    + mail + b")\r\n")
        if command == "LOGOUT":
            return b"* BYE logging out\r\n"
        return b""

    def _capabilities(self) -> str:
        return "IMAP4rev1 STARTTLS" if self.mode == STARTTLS_TRICKLE else "IMAP4rev1"

    def _size(self, uid: int) -> str:
        if uid in self.unsized:
            return ""
        size = len(self.mails[uid - 1]) if uid <= len(self.mails) else PADDING_SIZE
        return f" RFC822.SIZE {size}"

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

    def _trickle(self, conn: socket.socket, byte: bytes = b"*") -> None:
        self.trickling.set()
        while not self.done.is_set():
            conn.sendall(byte)
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
