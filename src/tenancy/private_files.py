"""Files only the account that runs Tenancy may read: TENANCY_HOME holds the database (password
and code hashes, refresh-token digests, every customer's email), the signing key and the logs.

Directories the app creates are 0700 and its files 0600, set when they are created (mkdir's and
open's mode, so nothing is ever readable by others, not even for an instant) whatever the umask.
Files and app-named subdirectories left by older versions with looser modes are tightened when
next opened, if this account owns them. A TENANCY_HOME that already exists is left as it is: it
may be a directory someone chose and shares (make it 0700 yourself); what the app keeps in it is
private either way.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = [
    "PRIVATE_DIRECTORY_MODE",
    "PRIVATE_FILE_MODE",
    "create_private_file",
    "private_directory",
    "tighten",
    "tighten_descriptor",
]

PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_directory(path: Path, *, tighten_existing: bool = True) -> None:
    """Creates `path`, and any missing parents, with mode 0700. An existing `path` is tightened
    to its owner unless `tighten_existing` is false (TENANCY_HOME itself); existing parents are
    never changed."""
    missing: list[Path] = []
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        try:
            # mkdir's mode is masked by the umask, which only ever takes bits away.
            directory.mkdir(mode=PRIVATE_DIRECTORY_MODE)
        except FileExistsError:
            continue  # another process made it meanwhile, the same way
    if tighten_existing and path not in missing:
        tighten(path)


def create_private_file(path: Path) -> None:
    """Creates `path` empty with mode 0600 unless it exists; an existing file is tightened."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        tighten(path)
    else:
        os.close(descriptor)


def tighten(path: Path) -> None:
    """Takes group and other permissions off `path` if this account owns it and they are set.
    Best effort: a file gone meanwhile, or one owned by another account, is left alone."""
    if os.name != "posix":
        return
    try:
        status = path.stat()
        if status.st_uid == os.getuid() and stat.S_IMODE(status.st_mode) & 0o077:
            path.chmod(stat.S_IMODE(status.st_mode) & 0o700)
    except OSError:
        return


def tighten_descriptor(descriptor: int) -> None:
    """`tighten` for a file already open."""
    if os.name != "posix":
        return
    try:
        status = os.fstat(descriptor)
        if status.st_uid == os.getuid() and stat.S_IMODE(status.st_mode) & 0o077:
            os.fchmod(descriptor, stat.S_IMODE(status.st_mode) & 0o700)
    except OSError:
        return
