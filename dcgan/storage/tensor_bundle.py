"""What a TensorFlow checkpoint's data files must hold, read from its index without
TensorFlow, so that `dcgan runs` can tell a checkpoint cut short (a copy that stopped
part-way, a disk that failed) in a listing that never starts TensorFlow.

The index is a LevelDB-style table (TensorFlow's tensor bundle format): a footer naming
the index block, index entries naming data blocks, and in those, one entry per tensor
whose value (a BundleEntryProto) gives its shard, offset and size; the entry with the
empty key (a BundleHeaderProto) gives the number of shards. Nothing here trusts the file:
every length is checked against what is there, and anything unexpected is a BundleError.
"""

from __future__ import annotations

import struct
from pathlib import Path

from dcgan.files.reading import MiB, read_bytes

MAX_INDEX_BYTES = 64 * MiB  # one entry per variable: a DCGAN's index is kilobytes
FOOTER_BYTES = 48  # two block handles padded to 40 bytes, then the magic number
TABLE_MAGIC = 0xDB4775248B80FB57
BLOCK_TRAILER = 5  # a compression byte and a CRC after every block
NO_COMPRESSION = 0


class BundleError(ValueError):
    """The index is not what a TensorFlow checkpoint writes."""


def shard_extents(index: Path) -> tuple[int, dict[int, int]]:
    """The number of data shards, and for each shard that holds tensors the bytes its file
    must have at least (the end of its last tensor)."""
    table = read_bytes(index, MAX_INDEX_BYTES, "checkpoint index")
    if len(table) < FOOTER_BYTES:
        raise BundleError("shorter than a table's footer")
    footer = table[-FOOTER_BYTES:]
    if struct.unpack("<Q", footer[-8:])[0] != TABLE_MAGIC:
        raise BundleError("no table magic number at its end")
    _, at = _varint(footer, 0)  # the metaindex block's offset and size: unused
    _, at = _varint(footer, at)
    offset, at = _varint(footer, at)
    size, _ = _varint(footer, at)
    shards, ends = None, {}
    for _, handle in _entries(_block(table, offset, size)):
        block_offset, at = _varint(handle, 0)
        block_size, _ = _varint(handle, at)
        for key, value in _entries(_block(table, block_offset, block_size)):
            fields = _fields(value)
            if key == b"":
                shards = _number(fields, 1, 1)
            elif 7 not in fields:  # a partitioned tensor's own entry: its slices hold the bytes
                shard = _number(fields, 3, 0)
                end = _number(fields, 4, 0) + _number(fields, 5, 0)
                ends[shard] = max(ends.get(shard, 0), end)
    if shards is None or shards < 1 or any(shard >= shards for shard in ends):
        raise BundleError("no header, or tensors in shards it does not have")
    return shards, ends


def _block(table: bytes, offset: int, size: int) -> bytes:
    if offset < 0 or offset + size + BLOCK_TRAILER > len(table) - FOOTER_BYTES:
        raise BundleError("a block outside the file")
    if table[offset + size] != NO_COMPRESSION:
        raise BundleError("a compressed block (TensorFlow writes none)")
    return table[offset : offset + size]


def _entries(block: bytes):
    """(key, value) of each entry of a block; keys share prefixes with the entry before."""
    if len(block) < 4:
        raise BundleError("a block too short for its restart count")
    restarts = struct.unpack("<I", block[-4:])[0]
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise BundleError("a block's restart points run past it")
    at, key = 0, b""
    while at < end:
        shared, at = _varint(block, at)
        unshared, at = _varint(block, at)
        length, at = _varint(block, at)
        if shared > len(key) or at + unshared + length > end:
            raise BundleError("an entry runs past its block")
        key = key[:shared] + block[at : at + unshared]
        at += unshared
        yield key, block[at : at + length]
        at += length


def _fields(message: bytes) -> dict[int, int | None]:
    """A protobuf message's varint fields by number; length-delimited ones as None (only
    whether they are there matters here), fixed-width ones skipped."""
    fields: dict[int, int | None] = {}
    at = 0
    while at < len(message):
        tag, at = _varint(message, at)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            fields[number], at = _varint(message, at)
        elif wire == 2:
            length, at = _varint(message, at)
            at += length
            fields[number] = None
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise BundleError(f"protobuf wire type {wire}")
        if at > len(message):
            raise BundleError("a field runs past its entry")
    return fields


def _number(fields: dict[int, int | None], number: int, default: int) -> int:
    """Field number's value, which must be a varint where it is there at all."""
    value = fields.get(number, default)
    if value is None:
        raise BundleError(f"field {number} of an entry is not a number")
    return value


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise BundleError("a number runs past its end")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at
