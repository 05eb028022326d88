"""Helpers to build damaged snapshot files for the rejection tests."""
import zlib

MAGIC_LEN = 8


def preamble_size(data: bytes) -> int:
    return 12 + int.from_bytes(data[10:12], "little") + 4


def with_preamble_patch(data: bytes, offset: int, new: bytes) -> bytes:
    """Replaces preamble bytes at `offset` and recomputes the preamble CRC, so that only the
    field's meaning is wrong (as a file written by another version would be)."""
    end = preamble_size(data) - 4
    head = bytearray(data[:end])
    head[offset:offset + len(new)] = new
    crc = zlib.crc32(bytes(head)).to_bytes(4, "little")
    return bytes(head) + crc + data[end + 4:]


FORMAT_VERSION_AT = 8
PY_HEXVERSION_AT = 12 + 4 + 8  # after flags and created
