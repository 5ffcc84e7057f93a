"""Build hook: compile planmon's showplan operator reader (``_showplan_ops.pyx``) at install time.

``uv sync`` (and ``pip install``) run this inside the isolated build environment that
``[build-system] requires`` describes: Cython, setuptools (for the compiler driver) and the same lxml
release the lock file installs (the module reads lxml's element structs, so it must be built against
the lxml it runs with). The compiled module goes next to the .pyx, which is where an editable install
imports it from; a wheel carries it too.

Without a working C compiler the build does not fail: it says so and planmon runs on the pure-Python
reader (``showplan._operator_tree``), slower but identical (ADR 0004).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import sysconfig
import tempfile
import traceback
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODULE = "planmon.plans._showplan_ops"
SOURCE = Path("plugins/planmon/plans/_showplan_ops.pyx")


def compiled_name() -> str:
    """File name of the compiled module for this interpreter (e.g. ``_showplan_ops.cpython-311-....so``)."""
    return SOURCE.stem + str(sysconfig.get_config_var("EXT_SUFFIX"))


def source_sha256(source: Path) -> str:
    """The digest the module is stamped with; showplan.py compares it with the .pyx beside it."""
    return hashlib.sha256(source.read_bytes()).hexdigest()


def compile_module(root: Path) -> Path:
    """Cythonize and compile the module into the source tree; return the compiled file."""
    import lxml  # the build environment's lxml: its headers and structs
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension

    source = root / SOURCE
    target = source.with_name(compiled_name())
    with tempfile.TemporaryDirectory(prefix="planmon-build-") as scratch:
        extension = Extension(
            MODULE,
            [str(source)],
            include_dirs=lxml.get_include(),
            define_macros=[("PLANMON_SOURCE_SHA256", f'"{source_sha256(source)}"')],
        )
        modules = cythonize(
            [extension],
            build_dir=scratch,  # the generated C stays out of the source tree
            quiet=True,
            compiler_directives={"language_level": 3},
        )
        distribution = Distribution({"name": "planmon-compiled", "ext_modules": modules})
        command = distribution.get_command_obj("build_ext")
        command.build_lib = str(Path(scratch) / "lib")
        command.build_temp = str(Path(scratch) / "temp")
        command.ensure_finalized()
        command.run()
        built = Path(command.get_ext_fullpath(MODULE))
        shutil.copyfile(built, target)
    return target


class CompiledReaderHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compile the operator reader; fall back to the pure-Python reader when that is impossible."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile before hatchling collects files; a wheel then carries the compiled module."""
        root = Path(self.root)
        try:
            target = compile_module(root)
        except Exception:  # no compiler, no headers, a Cython error: build on without it (ADR 0004)
            traceback.print_exc(file=sys.stderr)
            self.app.display_warning(
                "planmon: the compiled showplan reader could not be built (see above); planmon will use"
                " its pure-Python reader, which gives the same results more slowly"
            )
            return
        self.app.display_info(f"planmon: compiled {target.relative_to(root)}")
        if version != "editable":  # an editable install imports it from the source tree
            build_data["force_include"][str(target)] = f"planmon/plans/{target.name}"
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
