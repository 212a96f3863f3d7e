"""A private copy of a bundle for an engine that lives long (`litert serve`).

The LiteRT-LM runtime maps the bundle file and reads it during requests; a file truncated in
place under a running engine kills the whole process with SIGBUS (taking every served model
with it). So the server opens its engines on a copy only it can reach: made in
`$LITERT_HOME/serving/<pid>-…/`, opened, then unlinked at once — the open mapping keeps the
bytes, no path leads to them, and the disk space is given back when the engine closes (or
the process ends in any way). The copy keeps the original's name and mtime, which is what the
runtime's weight cache is keyed on, so the cache still hits.

Where the disk has no room for a copy, the original is served as it is, with one warning.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from litert import store


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(base: Path) -> None:
    """Remove copies left by servers that died between copying and unlinking (SIGKILL)."""
    for child in base.iterdir():
        pid = child.name.split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(child, ignore_errors=True)


def _copy(src: Path, dest: Path) -> None:
    """Copy bytes with copy_file_range (a reflink on filesystems that share extents), else plainly."""
    try:
        with open(src, "rb") as fin, open(dest, "wb") as fout:
            left = os.fstat(fin.fileno()).st_size
            while left > 0:
                done = os.copy_file_range(fin.fileno(), fout.fileno(), min(left, 1 << 30))
                if done == 0:
                    break
                left -= done
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        shutil.copyfile(src, dest)
    shutil.copystat(src, dest)


@contextlib.contextmanager
def private_copy(path: Path) -> Iterator[Path]:
    """Yield a path to a private copy of `path`; it is unlinked when the block ends (open it inside)."""
    base = store.ensure_dir(store.home() / "serving")
    _sweep(base)
    where = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=base))
    try:
        dest = where / path.name
        try:
            _copy(path, dest)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            print(
                f"warning: no room in {base} for a private copy of {path.name}; serving the file itself "
                "(changing it in place while it is served would stop the server)",
                file=sys.stderr,
                flush=True,
            )
            yield path
            return
        yield dest
    finally:
        shutil.rmtree(where, ignore_errors=True)
