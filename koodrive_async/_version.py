"""The version number: the one place it is written.

The package metadata reads it from here at build time (hatch's dynamic version,
``[tool.hatch.version]`` in pyproject.toml), and ``koodrive_async.__version__``
imports it, so the two cannot disagree.
"""

__version__ = "0.1.0.dev0"
