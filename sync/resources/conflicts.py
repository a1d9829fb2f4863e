"""``GET /conflicts`` and ``POST /conflicts/{id}/resolve``."""


class Collection:
    def __init__(self, rt):
        self.rt = rt


class Resolve:
    def __init__(self, rt):
        self.rt = rt
