"""Docs that cannot rot (issue #25 item 7): every fenced block of README.md and docs/*.md.
Python blocks: compiled, and every import line must resolve (they mostly need a VapourSynth
clip, a GPU or weights, so they are not run). Shell blocks: each dlgsa-* / scripts/*.py command
line is parsed by that command's real argparse parser (parse_args is stopped before running)."""
import argparse
import importlib
import re
import shlex
import sys
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
ENTRY = {"dlgsa-upscale": "dlgsa_vs.cli.video", "dlgsa-upscale-ray": "dlgsa_vs.cli.ray",
         "dlgsa-upscale-image": "dlgsa_vs.cli.upscale_image", "dlgsa-compare": "dlgsa_vs.cli.compare_models",
         "dlgsa-build-engine": "dlgsa_vs.cli.build_engine", "dlgsa-export-onnx": "dlgsa_vs.cli.export_onnx"}


def blocks(kinds):
    for doc in DOCS:
        for m in FENCE.finditer(doc.read_text()):
            if m.group(1) in kinds:
                yield pytest.param(m.group(2), id=f"{doc.name}:{doc.read_text()[:m.start()].count(chr(10)) + 1}")


class _Parsed(Exception):
    pass


def _commands(text):
    text = text.replace("\\\n", " ")
    for line in text.splitlines():
        line = re.sub(r"^\s*[$>]\s*", "", line).split(" #")[0]
        for part in re.split(r"&&|\|\||\||;", line):
            try:
                words = shlex.split(part)
            except ValueError:
                continue
            for i, w in enumerate(words):
                name = Path(w).name
                if name in ENTRY or (w.startswith(("scripts/", "./scripts/")) and w.endswith(".py")):
                    yield w, [a for a in words[i + 1:] if not a.startswith((">", "2>"))]
                    break


def _parse(cmd, args):
    orig = argparse.ArgumentParser.parse_args

    def stop(self, a=None, ns=None):
        orig(self, a, ns)
        raise _Parsed

    with mock.patch.object(argparse.ArgumentParser, "parse_args", stop), \
            mock.patch.object(sys, "argv", [cmd, *args]):
        name = Path(cmd).name
        if name in ENTRY:
            main = importlib.import_module(ENTRY[name]).main
            call = lambda: main(args)  # noqa: E731
        else:
            import runpy
            call = lambda: runpy.run_path(str(ROOT / cmd.lstrip("./")), run_name="__main__")  # noqa: E731
        with pytest.raises((_Parsed, SystemExit)) as e:
            call()
        if e.type is SystemExit:
            assert e.value.code in (0, None), f"{cmd} {shlex.join(args)}: argparse refused it"


@pytest.mark.parametrize("text", list(blocks({"sh", "bash", "console", "shell"})))
def test_shell_block_commands_parse(text):
    for cmd, args in _commands(text):
        _parse(cmd, args)


@pytest.mark.parametrize("text", list(blocks({"python", "py"})))
def test_python_block_compiles_and_imports_resolve(text):
    compile(text, "<doc>", "exec")
    for m in re.finditer(r"^\s*from\s+([\w.]+)\s+import\s+([\w, ]+)|^\s*import\s+([\w.]+)", text, re.M):
        mod = m.group(1) or m.group(3)
        top = mod.split(".")[0]
        if top != "dlgsa_vs" and importlib.util.find_spec(top) is None:
            continue  # a third-party runtime the doc is about (vapoursynth, vsmlrt, tensorrt): not here
        module = importlib.import_module(mod)
        for name in filter(None, (n.strip() for n in (m.group(2) or "").split(","))):
            assert hasattr(module, name) or importlib.util.find_spec(f"{mod}.{name}"), f"{mod}.{name}"


# --- what a new user met (issue #36) ---

def _fenced(doc: Path) -> str:
    return "\n".join(m.group(2) for m in FENCE.finditer(doc.read_text()))


def test_install_lines_work_from_a_clone():
    """dlgsa-vs is not on PyPI: every install line installs the clone ('.[extra]'), and the
    README says how, and that the published name does not exist."""
    readme = (ROOT / "README.md").read_text()
    assert "pip install '.[vapoursynth]'" in _fenced(ROOT / "README.md")
    assert "not published on PyPI" in readme
    for doc in DOCS:
        code = _fenced(doc)
        assert not re.search(r"^\s*pip install [\"']?dlgsa-vs\b", code, re.M), \
            f"{doc.name}: installs the unpublished name"


def test_examples_do_not_point_to_the_projects_own_fixtures():
    for doc in DOCS:
        assert "shared/data" not in _fenced(doc), f"{doc.name}: an example uses ../shared/data, which users lack"


def test_readme_opens_with_what_it_is_and_links_the_paper_and_the_authors():
    readme = (ROOT / "README.md").read_text()
    first = readme.split("\n\n")[1]  # the paragraph after the title
    assert "DLGSANet" in first and "arxiv.org/abs/2301.02031" in first
    assert "github.com/NeonLeexiang/DLGSANet" in first
    assert not re.search(r"\d+ (min|s)\b|passed|fps", first), "timings belong in bench/README.md"
    assert not re.search(r"fps \d", readme), "a ratio written as fps"
    assert "vapoursynth config" in readme  # vspipe's one-time setup


def test_what_the_docs_say_is_missing_is_missing():
    """'no `--option`' in the docs is checked against the command line's real parser."""
    from dlgsa_vs.cli import video

    options = {o for a in video.build_parser()._actions for o in a.option_strings}
    for doc in DOCS:
        for option in re.findall(r"\bno `(--[a-z][a-z-]*)`", doc.read_text()):
            assert option not in options, f"{doc.name} says there is no {option}, but dlgsa-upscale has it"
