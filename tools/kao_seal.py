"""kao_seal.py — the seal kao puts on its HDF5 files (src/h5seal.c), for Python tools.

A sealed file starts with a 512-byte HDF5 user block (h5py: userblock_size=512) that holds, as
text, "kao-seal 1", the CRC-32 of everything after the block and its length. kao refuses a sealed
file whose contents no longer match; files without a seal are read as they are.
"""
import os
import zlib

BLOCK = 512
MAGIC = b"kao-seal 1\n"
CHUNK = 1 << 20


def _crc_after_block(f):
    f.seek(BLOCK)
    crc, total = 0, 0
    while chunk := f.read(CHUNK):
        crc = zlib.crc32(chunk, crc)
        total += len(chunk)
    return crc, total


def _block(crc, total):
    """The whole user block of a seal: the text, then zeros."""
    return (MAGIC + f"crc32 {crc:08x}\nbytes {total}\n".encode()).ljust(BLOCK, b"\0")


def seal(path):
    """Writes the seal of a closed HDF5 file made with userblock_size=512, and flushes it to disk."""
    with open(path, "r+b") as f:
        crc, total = _crc_after_block(f)
        f.seek(0)
        f.write(_block(crc, total))
        f.flush()
        os.fsync(f.fileno())


def check(path):
    """None when path is unsealed or matches its seal; otherwise what is wrong, as kao says it."""
    with open(path, "rb") as f:
        block = f.read(BLOCK)
        # Two of the seal's three words make a seal, perhaps a damaged one (src/h5seal.c).
        words = sum(w in block for w in (b"kao-seal ", b"crc32 ", b"\nbytes "))
        if not block.startswith(MAGIC) and words < 2:
            return None
        if len(block) < BLOCK:
            return f"truncated: {len(block)} bytes, less than its kao seal's {BLOCK}"
        try:
            lines = block[len(MAGIC):].split(b"\0", 1)[0].decode().split("\n")
            want_crc = int(lines[0].removeprefix("crc32 "), 16)
            want_total = int(lines[1].removeprefix("bytes "))
        except (UnicodeDecodeError, ValueError, IndexError):
            want_crc = want_total = -1
        if want_crc < 0 or want_total < 0 or block != _block(want_crc, want_total):
            return f"damaged: its kao seal (the first {BLOCK} bytes) is unreadable"
        crc, total = _crc_after_block(f)
    if total < want_total:
        return f"truncated: {total + BLOCK} of its {want_total + BLOCK} bytes are there"
    if total > want_total:
        return f"changed: {total + BLOCK} bytes, its seal says {want_total + BLOCK}"
    if crc != want_crc:
        return f"damaged: CRC-32 {crc:08x}, its seal says {want_crc:08x}"
    return None
