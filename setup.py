"""Package mapping only; all metadata lives in pyproject.toml.

The runtime lives in ``server/`` (import name ``maskserve``) and the networks in
``models/`` (import name ``maskserve.models``): the folder names follow the
project's design card, the import names keep site-packages tidy.
"""

from setuptools import find_namespace_packages, setup

FOLDERS = {"maskserve": "server", "maskserve.models": "models"}


def _packages() -> list[str]:
    names: list[str] = []
    for prefix, folder in FOLDERS.items():
        names.append(prefix)
        # namespace packages too: the data folders (zoo/<model>, synthetic/assets) are
        # then declared packages, so setuptools ships their files without warnings
        subs = find_namespace_packages(folder, exclude=["*__pycache__*"])
        names.extend(f"{prefix}.{sub}" for sub in subs)
    return names


setup(packages=_packages(), package_dir=FOLDERS)
