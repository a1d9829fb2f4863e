"""``GET /changes`` and ``POST /ack``."""


class Changes:
    def __init__(self, rt):
        self.rt = rt


class Ack:
    def __init__(self, rt):
        self.rt = rt
