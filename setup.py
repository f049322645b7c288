"""Package mapping only; all metadata lives in pyproject.toml.

The runtime lives in ``server/`` (import name ``maskserve``) and the networks in
``models/`` (import name ``maskserve.models``): the folder names follow the
project's design card, the import names keep site-packages tidy.
"""

from setuptools import find_packages, setup

FOLDERS = {"maskserve": "server", "maskserve.models": "models"}


def _packages() -> list[str]:
    names: list[str] = []
    for prefix, folder in FOLDERS.items():
        names.append(prefix)
        names.extend(f"{prefix}.{sub}" for sub in find_packages(folder))
    return names


setup(packages=_packages(), package_dir=FOLDERS)
