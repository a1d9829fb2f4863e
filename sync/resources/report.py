"""``POST /report``."""


class Report:
    def __init__(self, rt):
        self.rt = rt
