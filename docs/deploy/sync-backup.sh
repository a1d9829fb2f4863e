#!/bin/sh
# Usage: sync-backup.sh BACKUP_ROOT [KEEP]
#
# Writes BACKUP_ROOT/<UTC date and time> with `app.py backup`, hard-linking
# the blobs the newest earlier backup already holds (--link-dest), then
# removes all but the KEEP (default 14) newest backups. Run it from the
# server's checkout with SYNC_DATA_DIR set (see sync-backup.service), or
# from cron:
#   30 3 * * *  cd /opt/sync-server && SYNC_DATA_DIR=/srv/sync/data docs/deploy/sync-backup.sh /mnt/backup/sync 14
set -eu

root=${1:?usage: sync-backup.sh BACKUP_ROOT [KEEP]}
keep=${2:-14}
python=${PYTHON:-.venv/bin/python}

# Names sort by time; only complete backups have a database (it is written last).
previous=$(ls -1d "$root"/20*/sync.sqlite3 2>/dev/null | tail -n 1 | xargs -r dirname)
dest="$root/$(date -u +%Y-%m-%dT%H%M%SZ)"

if [ -n "$previous" ]; then
    "$python" app.py backup "$dest" --link-dest "$previous"
else
    "$python" app.py backup "$dest"
fi

# Keep the newest $keep complete backups; a blob shared with a kept backup
# stays on disk through its other hard link.
ls -1d "$root"/20*/ 2>/dev/null | head -n "-$keep" | while read -r old; do
    rm -rf -- "$old"
done
