"""Pipelined SFTP reads without paramiko's prefetch thread.

paramiko reads a range (`SFTPFile.readv`, and `getfo` through `prefetch`) by sending the
READ requests from a helper thread while the caller reads the answers; when the answers
come faster than the thread sends (a loaded machine), the request list runs empty for a
moment, the file counts as fully prefetched, and the rest of the range is read AGAIN
with one synchronous request per 32 KiB while the thread's requests still arrive: a clone
downloaded 36 MiB for 28 MiB of packs and took 1.7x as long, in 2 of 4 runs with four
sessions reading at once. Here the caller sends the requests itself, up to WINDOW
outstanding, and takes each answer as it comes: every byte is asked for once.

Uses the request/answer pair SFTPFile itself is built on (`_async_request`,
`_read_response`, answers handed to the object passed as `fileobj`).
"""

from __future__ import annotations

import paramiko
from paramiko.sftp import CMD_DATA, CMD_READ, CMD_STATUS, int64

REQUEST = 32 * 1024  # bytes per READ (paramiko's MAX_REQUEST_SIZE; servers cap there)
WINDOW = 64  # READ requests outstanding at once (2 MiB in flight)


class _Answers:
    """Where paramiko hands the answers to our READ requests."""

    def __init__(self, ftp: paramiko.SFTPClient) -> None:
        self.ftp = ftp
        self.data: dict[int, bytes] = {}
        self.error: BaseException | None = None
        self.answered = 0

    def _async_response(self, t: int, msg: paramiko.Message, num: int) -> None:
        self.answered += 1
        if t == CMD_DATA:
            self.data[num] = msg.get_string()
            return
        if t == CMD_STATUS:  # an error (EOF: the object is shorter than it said)
            try:
                self.ftp._convert_status(msg)
            except BaseException as exc:  # noqa: BLE001 - raised by read_range
                self.error = self.error or exc
            return
        self.error = self.error or OSError(f"unexpected SFTP answer {t} to READ")


def read_range(ftp: paramiko.SFTPClient, path: str, offset: int,
               length: int | None) -> bytes:
    """Bytes [offset, offset+length) of the file at `path` (to its end if `length` is
    None), cut short at its end. Raises OSError as paramiko does (FileNotFoundError for a
    missing file), EOFError if the file ends before the bytes its size promised."""
    with ftp.open(path, "rb") as f:
        size = f.stat().st_size or 0
        end = size if length is None else min(offset + length, size)
        if end <= offset:
            return b""
        answers = _Answers(ftp)
        order: list[tuple[int, int, int]] = []  # (request number, position, bytes)
        pos = offset
        while pos < end or answers.answered < len(order):
            while pos < end and len(order) - answers.answered < WINDOW:
                n = min(REQUEST, end - pos)
                num = ftp._async_request(answers, CMD_READ, f.handle, int64(pos), int(n))
                order.append((num, pos, n))
                pos += n
            ftp._read_response()  # one answer (ours: a session serves one request)
            if answers.error is not None:
                raise answers.error
        parts = []
        for num, at, n in order:
            piece = answers.data.get(num, b"")
            if len(piece) < n:  # a server may answer a READ with fewer bytes: the rest
                f.seek(at + len(piece))
                piece += f.read(n - len(piece))
                if len(piece) < n:
                    raise EOFError(f"{path} ended while being read")
            parts.append(piece)
        return b"".join(parts)
