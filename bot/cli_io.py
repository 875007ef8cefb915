"""How `govbot` commands read and print: input files in the encodings Chinese offices use, tables
aligned by display width, JSON for scripts, progress on long work.

A Chinese character takes two columns in a terminal, so padding by `len` misaligns every column after
a name like 政务公开办; `table` pads by display width (wcwidth) instead. Excel in China saves CSV as
GBK, so `read_text` accepts UTF-8, UTF-8 with BOM and GBK (read as GB18030, its superset).
"""

from __future__ import annotations

import errno
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

import click
from wcwidth import wcswidth

from bot.errors import GovbotError

_OS_REASONS = {errno.ENOENT: "文件或目录不存在", errno.EACCES: "没有权限", errno.EPERM: "没有权限",
               errno.EISDIR: "这是一个目录，不是文件", errno.ENOTDIR: "路径中有一段不是目录", errno.ENOSPC: "磁盘已满",
               errno.EROFS: "只读的文件系统", errno.EEXIST: "已存在"}


def os_reason(e: OSError) -> str:
    """Why a file operation failed, in Chinese."""
    return _OS_REASONS.get(e.errno or 0, e.strerror or type(e).__name__)


# `--json` on every listing command: the rows as a JSON array, the same fields the API returns.
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table (for scripts).")


def width(text: str) -> int:
    w = wcswidth(text)
    return len(text) if w < 0 else w  # control characters: count them as one column each


def pad(text: str, columns: int, align: str = "<") -> str:
    fill = " " * max(0, columns - width(text))
    return fill + text if align == ">" else text + fill


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str], align: str = "") -> list[str]:
    """Lines of a table; `align` has one character per column, ">" right-aligns it (numbers)."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [width(h) for h in headers]
    for row in cells:
        widths = [max(w, width(c)) for w, c in zip(widths, row, strict=True)]
    aligns = align.ljust(len(headers), "<")
    last = len(headers) - 1

    def line(values: Sequence[str]) -> str:
        # The last column is not padded: no trailing blanks after a long text.
        return "  ".join(v if i == last and aligns[i] == "<" else pad(v, widths[i], aligns[i])
                         for i, v in enumerate(values)).rstrip()

    return [line(headers), *(line(r) for r in cells)]


def echo_table(rows: Iterable[Sequence[Any]], headers: Sequence[str], align: str = "") -> None:
    for text in table(rows, headers, align):
        click.echo(text)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=_default))


@contextmanager
def progress(items: Iterable[Any], *, length: int | None = None, label: str = "") -> Iterator[Iterable[Any]]:
    """A progress bar on stderr for long work; shown only on a terminal, so pipes and logs stay clean."""
    with click.progressbar(items, length=length, label=label, file=sys.stderr, hidden=not sys.stderr.isatty(),
                           show_pos=length is not None, show_eta=True) as bar:
        yield bar


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 (with or without BOM) or GBK text; anything else is refused with what to do."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise GovbotError("cli.csv_encoding", path=name) from None


def read_text(path: Path) -> str:
    """A text file given on the command line ("-" is stdin), in whichever encoding `decode_text` accepts."""
    if str(path) == "-":
        return decode_text(sys.stdin.buffer.read(), "stdin")
    try:
        return decode_text(path.read_bytes(), str(path))
    except FileNotFoundError:
        raise GovbotError("cli.file_missing", path=str(path)) from None
    except OSError as e:
        raise GovbotError("cli.file_unreadable", path=str(path), reason=os_reason(e)) from None


@contextmanager
def open_output(path: Path) -> Iterator[IO[str]]:
    """A text file to write ("-" is stdout), refused up front with the reason when it cannot be written."""
    if str(path) == "-":
        yield click.get_text_stream("stdout")
        return
    try:
        out = path.open("w", encoding="utf-8", newline="")
    except OSError as e:
        raise GovbotError("cli.file_unwritable", path=str(path), reason=os_reason(e)) from None
    with out:
        yield out
