"""Durable file-system steps shared by the blob store, backups and migrations."""

import os
import stat


def fsync_path(path):
    """fsync a file or a directory by name (a directory, so that a rename or
    a new entry in it survives a crash)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- who may read the data directory ---------------------------------------
#
# The database holds password hashes and every path of every user: the data
# directory is 0700 and every file in it 0600, whatever the umask. New files
# get these modes explicitly (and the command line sets umask 077 as well);
# ``tighten`` fixes a directory made by an older version or by hand.

DIR_MODE = 0o700
FILE_MODE = 0o600
PRIVATE_UMASK = 0o077


def make_private_dir(path):
    """``os.makedirs`` with mode 0700 for every directory it creates."""
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)


def create_private_file(path):
    """Create ``path`` empty with mode 0600 unless it exists."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass


def tighten(root, skip=(), deep=("spool",), shallow=("blobs",)):
    """Take group and other permissions away from ``root``, the files and
    folders directly in it (but the names in ``skip``), everything under the
    folders in ``deep`` and the folders (not the files) under ``shallow``.
    Returns the paths it changed.

    Blob files are left to ``tighten_files`` (once per data directory: the
    server creates them from 0600 spool files, and a start-up must not cost
    a stat of every file of a large library)."""
    changed = []

    def fix(path, wanted):
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & 0o077:
            return
        os.chmod(path, stat.S_IMODE(mode) & wanted)
        changed.append(path)

    fix(root, DIR_MODE)
    for entry in os.scandir(root):
        if entry.name in skip:
            continue
        if entry.is_dir(follow_symlinks=False):
            fix(entry.path, DIR_MODE)
            if entry.name in deep:
                for sub in os.scandir(entry.path):
                    fix(sub.path, DIR_MODE if sub.is_dir(follow_symlinks=False) else FILE_MODE)
            elif entry.name in shallow:
                for sub in os.scandir(entry.path):
                    if sub.is_dir(follow_symlinks=False):
                        fix(sub.path, DIR_MODE)
        else:
            fix(entry.path, FILE_MODE)
    return changed


def tighten_files(folder):
    """Mode 0600 for every file under ``folder``; the paths it changed."""
    changed = []
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode) and stat.S_IMODE(mode) & 0o077:
                os.chmod(path, stat.S_IMODE(mode) & FILE_MODE)
                changed.append(path)
    return changed
