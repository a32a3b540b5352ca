"""Packaging beyond pyproject.toml: install the lm-eval startup hook (so8t-lm-eval.pth) into site-packages.

The .pth file lets the stock `lm_eval` CLI (0.4.13, no plugin discovery) accept `--model so8t`; see
so8t/lmeval/plugin.py. It is copied next to the packages for wheels and into the editable wheel for
`pip install -e`, so both install modes (and `pip uninstall`) handle it like any other file.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_SOURCE = Path(__file__).resolve().parent / "so8t" / "lmeval" / "so8t-lm-eval.pth"


class BuildPyWithStartupHook(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            # editable wheels take files from install_lib (the unpacked wheel), not from build_lib
            target_dir = self.get_finalized_command("install").install_lib
        else:
            target_dir = self.build_lib
        self.copy_file(str(PTH_SOURCE), str(Path(target_dir) / PTH_SOURCE.name))


setup(cmdclass={"build_py": BuildPyWithStartupHook})
