"""radius's public face: every name in ``__all__`` resolves; the package imports no
Twisted reactor (never ``pyrad.curved``) and ``ssgate`` uses only its public face."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import radius

SSGATE = Path(radius.__file__).parent.parent / "ssgate"


def test_every_public_name_resolves() -> None:
    assert sorted(radius.__all__) == sorted(set(radius.__all__))
    for name in radius.__all__:
        assert getattr(radius, name) is not None, name


def test_importing_radius_installs_no_reactor() -> None:
    code = "import sys, radius; assert 'twisted.internet.reactor' not in sys.modules; assert 'pyrad.curved' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ssgate_imports_only_the_public_face_of_radius() -> None:
    private = []
    for path in sorted(SSGATE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("radius.")
            ):
                private.append(f"{path.name}:{node.lineno} from {node.module}")
    assert private == []
