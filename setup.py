"""Ship the repository's ``sql/`` inside the package as ``undecat/sql``.

An installed ``undecat migrate`` then finds the migrations. Everything else is in
pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithSql(build_py):
    """build_py that also copies ``sql/**.sql`` into ``undecat/sql``."""

    def run(self) -> None:
        """Build the modules, then add the migrations beside them."""
        super().run()
        source = Path(__file__).parent / "sql"
        target = Path(self.build_lib) / "undecat" / "sql"
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)


setup(cmdclass={"build_py": BuildPyWithSql})
