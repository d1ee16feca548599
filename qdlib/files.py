"""Files, written whole or not at all: the bottom layer every other module writes through.

One implementation of each: a file (:func:`atomic_write_bytes` and its text, JSON, JSONL and
figure forms) and a folder (:func:`atomic_dir`) are written under a temporary name in the same
folder, then renamed, so a reader sees the old one or the new one, never half. New files get the
usual permissions (``0o666`` and folders ``0o777``, less the process umask), as ``open`` would
give them. A failure (disk full, no permission, a file where a folder should be) names the path.
JSONL is read line by line at ``\\n`` only, so a U+2028 inside a JSON string stays text.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)  # there is no way to read the umask without setting it
    os.umask(mask)
    return mask


def naming_path(exc: OSError, path: Path) -> OSError:
    """The same kind of error, naming ``path``: a full disk (ENOSPC) names no file by itself."""
    if exc.errno is None:
        return OSError(f"{exc}: {str(path)!r}")
    named = OSError(exc.errno, exc.strerror or str(exc))  # PermissionError for EACCES, ...
    named.filename = str(path)
    return named


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise naming_path(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise naming_path(exc, path) from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` atomically (``\\n`` line ends on every system)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON (Korean stays readable), atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Write records as UTF-8 JSONL, one per line, atomically."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def save_figure(path: Path, fig: Any, dpi: int = 120) -> None:
    """Save a matplotlib figure as PNG, atomically."""
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())


def atomic_dir(target: Path, write: Callable[[Path], Any]) -> Path:
    """Run ``write(tmp_dir)``, then rename ``tmp_dir`` to ``target``: never a half-written folder.

    A folder already at ``target`` is replaced only once the new one is complete. A symbolic
    link at ``target`` is refused: replacing it would drop the link, writing through it would
    write outside the run (a linked parent folder, like a linked ``runs/``, is fine).
    """
    target = Path(target)
    if target.is_symlink():
        raise IsADirectoryError(f"{target} is a symbolic link where qdlib writes a folder of its "
                                "own; remove the link, nothing was changed.")  # fmt: skip
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(
            f"{target} is a file where a folder is written; move it away, nothing was changed."
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as exc:
        raise naming_path(exc, target) from exc
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise naming_path(exc, target) from exc
        raise
    return target


MAX_TEXT_BYTES = 1 << 30  # a text input read whole (data, questions, a profile): 1 GiB at most


class TextInputError(ValueError):
    """A text input that cannot be read: not a regular file, too big, or not UTF-8."""


class NotUTF8(TextInputError):
    """A text file that is not UTF-8; the message names the file, the line and the byte."""


def read_utf8(path: Path) -> str:
    """A UTF-8 text file (a BOM is dropped), checked before it is read: a regular file (never a
    device or a FIFO, which never end) of at most :data:`MAX_TEXT_BYTES`; else a
    :class:`TextInputError` (:class:`NotUTF8` saying where it is not UTF-8)."""
    path = Path(path)
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise TextInputError(f"{path}: not a regular file (a device, a pipe or a socket); give "
                             "a file.")  # fmt: skip
    if info.st_size > MAX_TEXT_BYTES:
        raise TextInputError(f"{path}: {info.st_size:,} bytes; a text input is read whole, at "
                             f"most {MAX_TEXT_BYTES:,} bytes.")  # fmt: skip
    with path.open("rb") as fh:
        raw = fh.read(MAX_TEXT_BYTES + 1)
    if len(raw) > MAX_TEXT_BYTES:  # it grew while being read
        raise TextInputError(f"{path}: more than {MAX_TEXT_BYTES:,} bytes.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise NotUTF8(
            f"{path}, line {line}: the file is not UTF-8 (byte {raw[exc.start]:#04x} at offset "
            f"{exc.start}). Save it as UTF-8 "
            "(`iconv -f cp949 -t utf-8` converts Korean Windows files, `-f latin1` Western ones)."
        ) from None


def read_json(path: Path) -> Any:
    """The JSON value in a UTF-8 file (a key given twice in an object: :class:`DuplicateKey`)."""
    return json.loads(read_utf8(path), object_pairs_hook=unique_keys)


@dataclass
class BadLine:
    """A JSONL line that is not JSON, and why."""

    reason: str


class DuplicateKey(ValueError):
    """A JSON object that gives one key twice (plain ``json`` keeps the last, silently)."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: a dict, or :class:`DuplicateKey` naming the key."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(f"the key {key!r} is given twice in one object")
        out[key] = value
    return out


def jsonl_lines(text: str) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank line of JSONL ``text``; a line that does not
    parse gives a :class:`BadLine` instead of a value, so the caller decides what it means."""
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line, object_pairs_hook=unique_keys)
        except json.JSONDecodeError as exc:
            yield lineno, BadLine(f"not valid JSON ({exc.msg} at column {exc.colno}).")
        except DuplicateKey as exc:
            yield lineno, BadLine(f"{exc}; keep one.")
        except RecursionError:
            yield lineno, BadLine("not valid here: JSON nested too deeply.")


# ---------------------------------------------------------------- is a file whole?


MAX_HEADER_BYTES = 100 * 2**20  # the safetensors library's own limit on a header


def safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is unusable (missing, cut, a header that does not parse or that
    names more bytes than the file holds), or None when its tensors are all there."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = path.stat().st_size
            head = fh.read(8)
            if len(head) < 8:
                return f"{path.name} is cut (only {size} bytes)"
            n = int.from_bytes(head, "little")
            if n > min(size - 8, MAX_HEADER_BYTES):
                return f"{path.name} is cut: its header alone needs {n} bytes"
            header = json.loads(fh.read(n))
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError, RecursionError) as exc:
        return f"{path.name} has an unreadable header ({exc})"
    tensors = {k: t for k, t in header.items() if k != "__metadata__"} if isinstance(
        header, dict) else {"the header": header}  # fmt: skip
    bad = next((k for k, t in tensors.items() if not _tensor_entry(t)), None)
    if bad is not None:
        return f"{path.name}: its header entry {bad!r:.60} is not a tensor's"
    ends = [t["data_offsets"][1] for t in tensors.values()]
    if 8 + n + max(ends, default=0) != size:
        return f"{path.name} is cut: it holds {size} bytes, its header names {8 + n + max(ends)}"
    return None


def _tensor_entry(entry: Any) -> bool:
    """A safetensors header entry as the format defines it: dtype, shape, two byte offsets."""
    if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str):
        return False
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0  # noqa: E731
    return (isinstance(shape, list) and all(map(whole, shape)) and isinstance(offsets, list)
            and len(offsets) == 2 and all(map(whole, offsets)) and offsets[0] <= offsets[1])


def zip_problem(path: Path) -> str | None:
    """Why a zip file (what ``torch.save`` writes) is unusable: missing, cut (its index comes
    last), or a member whose bytes no longer match their CRC (a flipped bit)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        return f"{path.name} is incomplete ({exc})"
    return f"{path.name} is damaged ({bad} fails its checksum)" if bad else None


def escaped(text: str) -> str:
    """``text`` with every control and format character written as an escape (``\\x1b``), so
    that a terminal shows it instead of obeying it. Newlines and tabs stay."""
    return "".join(
        c if c in "\n\t" or (c.isprintable() and unicodedata.category(c) != "Cf")
        else repr(c)[1:-1]
        for c in text
    )  # fmt: skip
