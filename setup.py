"""Build hooks; the metadata is in setup.cfg.

``schema.sql`` and ``docs/api/openapi.json`` stay at the top of the tree (the
source of truth) and are copied into the built package as ``sync/_files/``,
so a wheel holds them and ``sync.assets`` finds them once installed.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

# name in sync/_files/ -> path in the source tree (as in sync/assets.py)
SHIPPED = {
    "schema.sql": "schema.sql",
    "openapi.json": os.path.join("docs", "api", "openapi.json"),
}


class BuildPy(build_py):
    """Copy the shipped files into the built package (not for an editable
    install, which reads them from the tree)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = os.path.join(self.build_lib, "sync", "_files")
        self.mkpath(target)
        for name, source in SHIPPED.items():
            shutil.copyfile(source, os.path.join(target, name))


class Sdist(sdist):
    """Keep the shipped files in a source archive, so a wheel built from it has them."""

    def add_defaults(self):
        super().add_defaults()
        self.filelist.extend(SHIPPED.values())


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
