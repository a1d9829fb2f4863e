"""``GET``/``HEAD /download/{path}``."""


class Download:
    def __init__(self, rt):
        self.rt = rt
