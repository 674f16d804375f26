"""What an audio file's container promises about its length, checked against the bytes on disk.

libsndfile hides a cut file in most formats: for WAV, AIFF and AU it shortens the length to the
bytes present, for Ogg (Vorbis, Opus) it takes the length from the last page that is there, and
an MP3 without a frame count simply decodes fewer frames. :func:`container_problem` reads the
container's own promises (a chunk length, an end-of-stream page, an MPEG frame length) and says
when the file stops short of them. FLAC and counted MP3s (Xing/Info) promise a sample count that
libsndfile reports; :mod:`wav2small.audio` checks those by decoding the last samples.
"""

from __future__ import annotations

import mmap
import os
import struct

# Largest Ogg page: 27-byte header, 255 lacing values, 255 segments of 255 bytes.
_OGG_MAX_PAGE = 27 + 255 + 255 * 255
_OGG_EOS = 0x04


def container_problem(path) -> str | None:
    """Why the file at ``path`` is shorter than its container says, or None when it is whole (or
    the format promises nothing checkable here). Raises OSError when the file cannot be read."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return _chunk_problem(f, size, "<I", b"data", 12)
        if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return _chunk_problem(f, size, ">I", b"SSND", 12)
        if head[:4] == b".snd":
            return _au_problem(head, size)
        if head[:4] == b"OggS":
            return _ogg_problem(f, size)
        if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
            return _mp3_problem(f, size)
    return None


def _chunk_problem(f, size: int, unsigned: str, audio_id: bytes, offset: int) -> str | None:
    """RIFF (little-endian) and AIFF (big-endian) files: walk the chunks to the audio chunk and
    compare its declared length with the bytes that follow it."""
    f.seek(offset)
    while True:
        chunk = f.read(8)
        if len(chunk) < 8:
            return None  # no audio chunk: libsndfile says what is wrong with such a file
        length = struct.unpack(unsigned, chunk[4:])[0]
        if chunk[:4] == audio_id:
            available = size - f.tell()
            if length != 0xFFFFFFFF and available < length:
                return f"truncated file: header announces {length} bytes of audio, only {available} present"
            return None
        f.seek(length + (length & 1), os.SEEK_CUR)  # chunks are padded to an even length


def _au_problem(head: bytes, size: int) -> str | None:
    """Sun/NeXT AU: the header holds the data offset and the data length (all ones: unknown)."""
    if len(head) < 12:
        return None
    offset, length = struct.unpack(">II", head[4:12])
    if length != 0xFFFFFFFF and offset + length > size:
        return f"truncated file: header announces {length} bytes of audio, only {max(0, size - offset)} present"
    return None


def _ogg_crc(data: bytes) -> int:
    """The Ogg page checksum: CRC-32, polynomial 0x04C11DB7, no reflection, initial value 0."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_TABLE[(crc >> 24) ^ byte]
    return crc


def _ogg_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if r & 0x80000000 else (r << 1) & 0xFFFFFFFF
        table.append(r)
    return table


_OGG_TABLE = _ogg_table()


def _ogg_problem(f, size: int) -> str | None:
    """Ogg (Vorbis, Opus): a whole stream ends with a complete page flagged end-of-stream. Search the
    tail backwards for the last page whose checksum holds (a match of "OggS" inside audio data has
    a wrong checksum) and look at what follows it."""
    start = max(0, size - 2 * _OGG_MAX_PAGE)
    f.seek(start)
    tail = f.read()
    pos = len(tail)
    while (pos := tail.rfind(b"OggS", 0, pos)) >= 0:
        if pos + 27 > len(tail):
            continue
        segments = tail[pos + 26]
        if pos + 27 + segments > len(tail):
            continue
        end = pos + 27 + segments + sum(tail[pos + 27 : pos + 27 + segments])
        if end > len(tail):
            continue  # cut short, or not a page at all: look further back
        page = bytearray(tail[pos:end])
        stored = struct.unpack("<I", page[22:26])[0]
        page[22:26] = b"\0\0\0\0"
        if _ogg_crc(page) != stored:
            continue
        if tail[end : end + 4] == b"OggS":
            return f"truncated file: the Ogg page at byte {start + end} is cut short"
        if not tail[pos + 5] & _OGG_EOS:
            return "truncated file: the Ogg stream stops without its end-of-stream page"
        return None
    return "truncated or corrupt file: no complete Ogg page at its end"


# MPEG audio frame lengths: bitrates in kbit/s by (MPEG-1?, layer), sampling rates by version bits.
_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(header: bytes) -> int | None:
    """Bytes of the MPEG audio frame starting with ``header`` (4 bytes), or None if it is not a
    frame header this walk can follow (no sync, reserved values, free-format bitrate)."""
    if header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer = (header[1] >> 3) & 3, 4 - ((header[1] >> 1) & 3)
    bitrate_index, rate_index, padding = header[2] >> 4, (header[2] >> 2) & 3, (header[2] >> 1) & 1
    if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    bitrate, rate = _BITRATES[(mpeg1, layer)][bitrate_index] * 1000, _RATES[version][rate_index]
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    return (144 if layer == 2 or mpeg1 else 72) * bitrate // rate + padding


def _mp3_problem(f, size: int) -> str | None:
    """MP3: walk the frames from the first; a last frame that needs more bytes than remain means the
    file was cut. Where the walk cannot follow the stream (free format, junk) nothing is claimed."""
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos, end = 0, size
        if data[:3] == b"ID3" and size >= 10:
            tag = data[6:10]
            pos = 10 + (tag[0] << 21 | tag[1] << 14 | tag[2] << 7 | tag[3]) + (10 if data[5] & 0x10 else 0)
        if end >= 128 and data[end - 128 : end - 125] == b"TAG":
            end -= 128  # ID3v1
        if end >= 32 and data[end - 32 : end - 24] == b"APETAGEX":
            end -= struct.unpack("<I", data[end - 20 : end - 16])[0] + (32 if data[end - 9] & 0x80 else 0)
        while pos + 4 <= end:
            length = _mpeg_frame_length(data[pos : pos + 4])
            if length is None:
                return None
            if pos + length > end:
                return f"truncated file: its last MPEG frame needs {length} bytes, only {end - pos} present"
            pos += length
        if pos < end:  # a frame header cut in the middle
            return f"truncated file: it ends {end - pos} bytes into an MPEG frame header"
    return None
