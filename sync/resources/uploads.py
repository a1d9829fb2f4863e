"""``/upload``: resumable chunked upload sessions."""


class Collection:
    def __init__(self, rt):
        self.rt = rt


class Item:
    def __init__(self, rt):
        self.rt = rt


class Chunk:
    def __init__(self, rt):
        self.rt = rt


class Complete:
    def __init__(self, rt):
        self.rt = rt
