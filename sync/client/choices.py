"""Conflicts in words a person can act on: each version named by the device
that made it ("keep Laptop B's version", "keep the server's version", "keep
both"), and for each resolution the exact local file the next sync of this
folder changes, said before anything changes."""

import os
from datetime import datetime, timezone

from ..units import shown_size

REMOVED = "a removed device"


class Conflict:
    """One open conflict (the server's JSON) as seen from one folder:
    ``me`` is the folder's device id, ``names`` maps device ids to names,
    ``twins`` the other paths of the folder's view that differ only by case."""

    def __init__(self, conflict, me, names, twins=()):
        self.c = conflict
        self.server = conflict.get("server") or {}
        self.client = conflict.get("client") or {}
        self.path = conflict["path"]
        self.kind = conflict.get("kind")
        self.to = self.client.get("to")
        self.mine = self.client.get("device_id") == me
        self.names = names
        self.me = me
        self.twin = sorted(twins)[0] if twins else None

    def who(self, device_id):
        name = self.names.get(device_id, REMOVED) if device_id else "no device"
        return f"{name} (this device)" if device_id == self.me else name

    @property
    def device(self):
        """The name of the device whose version is the client's."""
        return self.names.get(self.client.get("device_id"), REMOVED)

    def copy_name(self, path):
        """Where keep_both saves the client's version (the server adds ' 2'
        and so on when that name is taken)."""
        folder, base = os.path.split(path)
        stem, ext = os.path.splitext(base)
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        name = f"{stem} (conflict {self.device} {day}){ext}"
        return f"{folder}/{name}" if folder else name

    # The two versions
    def versions(self):
        s, c = self.server, self.client
        if self.kind == "case_clash" and self.twin:
            server = f"the server's {self.twin}, by {self.who(s.get('device_id'))}"
        elif s.get("op") == "delete":
            server = f"deleted on the server by {self.who(s.get('device_id'))}"
        elif s.get("op"):
            server = (f"{shown_size(s.get('size'))}, by {self.who(s.get('device_id'))}, "
                      f"rev {s.get('rev')}")
        else:
            server = "nothing on the server"
        if c.get("op") == "delete":
            client = "deleted"
        elif c.get("op") == "move":
            client = f"moved to {self.to}"
        else:
            client = f"{shown_size(c.get('size'))}"
        here = " (this device)" if self.mine else ""
        return [f"the server's version: {server}",
                f"{self.device}'s version{here}: {client} (since {self.c.get('created_at')})"]

    def what(self):
        """The conflict in one line."""
        if self.kind == "case_clash":
            other = f" and {self.twin}" if self.twin else ""
            return f"{self.path}{other} differ only by case"
        if self.kind == "move":
            return f"{self.path} -> {self.to}"
        return self.path

    # The three resolutions
    def label(self, resolution):
        if resolution == "keep_server":
            return "keep the server's version"
        if resolution == "keep_client":
            return f"keep {self.device}'s version"
        return "keep both"

    def effect(self, resolution):
        """What the next sync of this folder changes, after ``resolution``."""
        p, to, kind = self.path, self.to, self.kind
        if kind == "delete_modify" and resolution == "keep_both":
            resolution = "keep_server"   # nothing of the client's to keep
        if resolution == "keep_server":
            if not self.mine:
                return "changes nothing here"
            return {"modify_modify": f"replaces {p} here with the server's version",
                    "delete_modify": f"brings {p} back here (the server's version)",
                    "move": f"puts {p} back here and removes {to}",
                    "case_clash": f"keeps {p} here, unsynced (the server keeps "
                                  f"{self.twin or 'the other name'}): rename it to sync it"
                    }.get(kind, "changes nothing here")
        if resolution == "keep_client":
            if self.mine:
                return "changes nothing here"
            return {"modify_modify": f"replaces {p} here with {self.device}'s version",
                    "delete_modify": f"deletes {p} here",
                    "move": f"moves {p} to {to} here",
                    "case_clash": f"adds {p} here"}.get(kind, "changes nothing here")
        if kind == "move":
            copy = self.copy_name(to)
            return (f"puts {p} back here and renames {to} to {copy!r}" if self.mine
                    else f"renames {p} here to {copy!r}")
        copy = self.copy_name(p)
        if kind == "case_clash":
            return (f"renames {p} here to {copy!r}" if self.mine else f"adds {copy!r} here")
        if self.mine:
            return (f"replaces {p} here with the server's version and saves this device's "
                    f"version as {copy!r}")
        return f"adds {self.device}'s version here as {copy!r}"


