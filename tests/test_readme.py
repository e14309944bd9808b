"""Every Python and shell block of README.md runs as written.

Blocks run in a scratch folder that holds links to the repository's ``examples`` and ``tests`` (the
README's commands name them), with its own result store. A Python block that defines tests runs
under pytest (with ``examples`` on the import path, as "in your own repository" says); other Python
blocks run as scripts; shell blocks run under ``bash -e``. A block marked
``<!-- readme-test: skip: REASON -->`` is not run and must say why; one marked
``<!-- readme-test: slow -->`` runs a suite (a minute or two): it runs by default and carries
the ``slow`` mark, so ``-m "not slow"`` leaves it out.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"^<!--\s*readme-test:\s*(skip|slow)\s*(?::\s*(.*?))?\s*-->\s*$")
RUN_LANGS = {"python", "bash", "sh", "shell", "console"}


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    mark: str  # "", "skip" or "slow"
    reason: str
    section: str = ""  # the heading above, as a slug
    index: int = 1  # the block's number within its section

    @property
    def id(self) -> str:
        return f"{self.section}-{self.index}-{self.lang}"


def readme_blocks(text: str) -> list[Block]:
    """The fenced code blocks of ``text`` with the readme-test mark just above each."""
    lines = text.splitlines()
    out: list[Block] = []
    section, counts = "top", {}
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            if lines[i].startswith("#"):
                section = re.sub(r"[^a-z0-9]+", "-", lines[i].lstrip("#").strip().lower()).strip("-")
            i += 1
            continue
        counts[section] = counts.get(section, 0) + 1
        start, lang = i, fence.group(1).lower()
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        if j >= len(lines):
            raise AssertionError(f"README.md line {start + 1}: a code block that never closes")
        above = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        mark = MARK.match(above.strip())
        out.append(
            Block(
                line=start + 1,
                lang=lang,
                code="\n".join(lines[start + 1 : j]) + "\n",
                mark=mark.group(1) if mark else "",
                reason=(mark.group(2) or "") if mark else "",
                section=section,
                index=counts[section],
            )
        )
        i = j + 1
    return out


BLOCKS = [b for b in readme_blocks(README.read_text(encoding="utf-8")) if b.lang in RUN_LANGS]


def test_every_block_is_found_and_each_skip_says_why():
    assert len(BLOCKS) >= 8
    assert {b.lang for b in BLOCKS} >= {"python", "bash"}
    for block in BLOCKS:
        if block.mark == "skip":
            assert len(block.reason) > 10, f"README line {block.line}: a skipped block must say why"
    run = [b for b in BLOCKS if b.mark != "skip"]
    assert len(run) >= 6, "most README blocks must run"


def test_the_readme_quantizer_is_the_example_file():
    """The README's ``# my_fsq.py`` block is ``examples/my_fsq.py``, the file its commands use."""
    block = next(b for b in BLOCKS if b.code.startswith("# my_fsq.py\n"))
    assert block.code == (ROOT / "examples" / "my_fsq.py").read_text(encoding="utf-8")


def test_the_parser_reads_marks_and_fences():
    text = (
        "x\n<!-- readme-test: skip: needs a cluster -->\n```bash\necho hi\n```\n\n```python\nprint(1)\n```\n"
    )
    got = readme_blocks(text)
    assert [(b.lang, b.mark, b.reason, b.code) for b in got] == [
        ("bash", "skip", "needs a cluster", "echo hi\n"),
        ("python", "", "", "print(1)\n"),
    ]


@pytest.fixture
def scratch(tmp_path):
    """A folder like a checkout's root for the README's commands, with its own store."""
    for name in ("examples", "tests"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    shutil.copy(ROOT / "examples" / "my_fsq.py", tmp_path / "my_fsq.py")  # "copy it beside you"
    (tmp_path / "pyproject.toml").symlink_to(ROOT / "pyproject.toml")
    return tmp_path


def _env(folder: Path) -> dict:
    path = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "examples"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "VQBENCH_STORE": str(folder / "results.sqlite")}
    # the README's `vqbench` is this checkout's command
    bindir = folder / "_bin"
    bindir.mkdir(exist_ok=True)
    launcher = bindir / "vqbench"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m vqbench.cli "$@"\n')
    launcher.chmod(0o755)
    pybin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([str(bindir), pybin, env.get("PATH", "")])
    env.pop("COLUMNS", None)
    return env


def assert_runs(args: list[str], folder: Path, what: str) -> None:
    got = subprocess.run(
        args, cwd=folder, env=_env(folder), capture_output=True, text=True, timeout=900, check=False
    )
    if got.returncode != 0:
        raise AssertionError(
            f"{what} failed (exit {got.returncode}):\n--- stdout\n{got.stdout[-4000:]}\n"
            f"--- stderr\n{got.stderr[-4000:]}"
        )


def _params():
    for block in BLOCKS:
        marks = [pytest.mark.slow] if block.mark == "slow" else []
        if block.mark == "skip":
            marks.append(pytest.mark.skip(reason=f"README: {block.reason}"))
        yield pytest.param(block, id=block.id, marks=marks)


@pytest.mark.parametrize("block", list(_params()))
def test_readme_block_runs_as_written(block, scratch):
    what = f"README.md block at line {block.line} ({block.lang})"
    if block.lang == "python" and re.search(r"^def test_", block.code, re.M):
        (scratch / "test_snippet.py").write_text(block.code, encoding="utf-8")
        assert_runs(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_snippet.py"], scratch, what
        )
    elif block.lang == "python":
        (scratch / "snippet.py").write_text(block.code, encoding="utf-8")
        assert_runs([sys.executable, "snippet.py"], scratch, what)
    else:
        assert_runs(["bash", "-e", "-o", "pipefail", "-c", block.code], scratch, what)
