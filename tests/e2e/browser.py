"""Headless Chromium for tests: screenshots and DOM dumps of pages we produce, offline."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def chromium_command(tmp_path: Path) -> list[str]:
    """Chromium with every background connection off and every host unresolvable."""
    return [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
    ]


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB(A) rows of an 8-bit PNG, decoded with the standard library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = depth = kind = 0
    while pos < len(data):
        size, name = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + size]
        pos += 12 + size
        if name == b"IHDR":
            width, height, depth, kind = struct.unpack(">IIBB", body[:10])
        elif name == b"IDAT":
            idat.append(body)
    assert depth == 8 and kind in (2, 6), (depth, kind)
    bpp = 3 if kind == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    previous, lines = bytearray(stride), []
    for y in range(height):
        start = y * (stride + 1)
        method, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride) if method else ():
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if method == 1:
                line[i] = (line[i] + left) & 255
            elif method == 2:
                line[i] = (line[i] + up) & 255
            elif method == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            else:  # Paeth
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                predicted = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + predicted) & 255
        lines.append(bytes(line))
        previous = line
    return width, height, lines


def colours(path: Path) -> dict[bytes, int]:
    """How many pixels have each RGB colour."""
    width, _height, lines = read_png(path)
    bpp = len(lines[0]) // width
    counts: dict[bytes, int] = {}
    for line in lines:
        for i in range(0, len(line), bpp):
            pixel = line[i:i + 3]
            counts[pixel] = counts.get(pixel, 0) + 1
    return counts


