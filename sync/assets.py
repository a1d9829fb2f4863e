"""Files the server reads besides its code: the schema and the API document.

Both are kept at the top of the source tree (``schema.sql``,
``docs/api/openapi.json``), where the design and the docs name them. A wheel
carries copies in ``sync/_files/`` (``setup.py`` writes them at build time),
so an installed package finds them wherever it is installed; a checkout or
an editable install reads the top-level files themselves.
"""

import os

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT = os.path.dirname(_PACKAGE)

# name in sync/_files/ -> path in the source tree
FILES = {
    "schema.sql": "schema.sql",
    "openapi.json": os.path.join("docs", "api", "openapi.json"),
}


def path(name):
    """The path of the shipped file ``name`` (a key of ``FILES``)."""
    packaged = os.path.join(_PACKAGE, "_files", name)
    if os.path.isfile(packaged):
        return packaged
    return os.path.join(_CHECKOUT, FILES[name])
