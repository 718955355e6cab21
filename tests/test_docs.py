"""The documentation site's promises: runnable examples, generated pictures and CLI help, nav.

Convention shared by every page: fenced ```python blocks are executed, in order, in one
namespace per page (so a page may build on its earlier blocks); ```py, ```bash, ```text and
other fences are shown only. README.md's Python example is executed with stand-ins for the
names it leaves to the reader's GAN (critic, real, fake, d_real, d_fake).
"""

from __future__ import annotations

import argparse
import ast
import builtins
import importlib.util
import re
import subprocess
import symtable
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
# Picture scripts; docs/scripts/check_math.py checks the built site instead.
SCRIPTS = sorted(
    p for p in (DOCS / "scripts").glob("*.py") if not p.name.startswith(("_", "check_"))
)
# Scripts whose pictures pages may show: the picture scripts and the benchmarks (the quality
# studies draw their figures from their measurements, e.g. with --figures docs/img).
PICTURE_SOURCES = SCRIPTS + sorted(
    p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")
)

# A fence opens with ``` and a language word and closes with ``` at the same indentation
# (blocks inside admonitions and list items are indented).
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """``(line, code)`` of every ```python block, dedented, in order of appearance."""
    return [
        (markdown.count("\n", 0, m.start()) + 1, textwrap.dedent(m["body"]))
        for m in FENCE.finditer(markdown)
        if m["lang"] == "python"
    ]


def run_blocks(
    name: str, markdown: str, monkeypatch: pytest.MonkeyPatch, setup: dict[str, object]
) -> types.ModuleType:
    """Execute the page's python blocks in one fresh module; fail naming page and block."""
    module = types.ModuleType("docs_page_" + re.sub(r"\W", "_", name))
    module.__dict__.update(setup)
    # Registered so that dataclasses, pickling and torch.save work on classes a page defines.
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for number, (line, code) in enumerate(python_blocks(markdown), start=1):
        try:
            exec(
                compile(code, f"{name} (python block {number}, line {line})", "exec"), vars(module)
            )
        except Exception as e:
            raise AssertionError(
                f"{name}: python block {number} (line {line}) failed: {type(e).__name__}: {e}"
            ) from e
    return module


def test_python_blocks_are_found_and_failures_name_the_page_and_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = (
        "text\n```python\nx = 1\n```\n```py\nshown only\n```\n"
        "!!! note\n    ```python\n    y = x + 1\n    ```\n```bash\nls\n```\n"
        "```python\nassert y == 3, y\n```\n"
    )
    assert [code for _, code in python_blocks(page)] == [
        "x = 1\n",
        "y = x + 1\n",
        "assert y == 3, y\n",
    ]
    with pytest.raises(AssertionError, match=r"demo.md: python block 3 \(line 15\) failed"):
        run_blocks("demo.md", page, monkeypatch, {})


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_examples_run(page: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = page.read_text()
    # Every opened python fence must be one extracted block: none is skipped by a misparse.
    opened = re.findall(r"^[ \t]*```python\b", text, flags=re.MULTILINE)
    assert len(opened) == len(python_blocks(text)), f"{page}: unbalanced python fences"
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    run_blocks(str(page.relative_to(ROOT)), text, monkeypatch, {})


# A block that builds on earlier ones says so in its first line, e.g. "# continuing the
# example above"; every other block runs as shown, on its own.
CONTINUES = re.compile(r"#\s*continu", re.IGNORECASE)


def names_from_elsewhere(code: str) -> set[str]:
    """The global names ``code`` reads but neither assigns, imports nor defines (builtins
    aside), in its own body or any function or class inside it."""
    top = symtable.symtable(code, "<block>", "exec")
    defined = {
        s.get_name()
        for s in top.get_symbols()
        if s.is_assigned() or s.is_imported() or s.is_namespace()
    }
    used: set[str] = set()
    tables = [top]
    while tables:
        table = tables.pop()
        used |= {
            s.get_name()
            for s in table.get_symbols()
            if s.is_referenced() and (table is top or s.is_global())
        }
        tables += table.get_children()
    return used - defined - set(dir(builtins))


def test_names_from_elsewhere() -> None:
    code = "import torch\nx = f(1)\ndef g(a):\n    return a + y + torch.ones(1)\nprint(x)\n"
    assert names_from_elsewhere(code) == {"f", "y"}


def test_every_block_runs_on_its_own_or_says_it_continues() -> None:
    """A reader copies one block: it must run as shown, or say which example it continues
    (the Lightning page's second block used Trainer from the first without a word)."""
    problems = []
    for page in PAGES:
        for number, (line, code) in enumerate(python_blocks(page.read_text()), start=1):
            names = names_from_elsewhere(code)
            if names and not CONTINUES.match(code):
                problems.append(
                    f"{page.relative_to(ROOT)}: python block {number} (line {line}) uses "
                    f"{sorted(names)} from an earlier block without saying so"
                )
    assert problems == []


def test_readme_example_runs_with_a_gan_around_it(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text()
    assert python_blocks(readme), "README.md has no python example"
    critic = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Softplus(), nn.Flatten())
    critic.append(nn.Linear(4 * 8 * 8, 1))
    real, fake = torch.rand(4, 3, 8, 8) * 2 - 1, torch.rand(4, 3, 8, 8) * 2 - 1
    setup = {"critic": critic, "real": real, "fake": fake}
    setup |= {"d_real": critic(real), "d_fake": critic(fake)}
    page = run_blocks("README.md", readme, monkeypatch, setup)
    d_loss = page.d_loss
    assert isinstance(d_loss, torch.Tensor) and d_loss.ndim == 0 and torch.isfinite(d_loss)
    d_loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in critic.parameters())


# --- what the reader sees ----------------------------------------------------------------

# Every control character but the newline: a literal TAB where "\text" lost its backslash to
# a Python escape shows as "D(    ext{real})", and no build or test notices otherwise.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
SOURCES = sorted([*(ROOT / "lipreg").rglob("*.py"), *(ROOT / "integrations").rglob("*.py")])


def control_characters(text: str) -> list[tuple[int, str]]:
    """``(line, character)`` of every control character of ``text`` but the newline."""
    return [(text.count("\n", 0, m.start()) + 1, repr(m[0])) for m in CONTROL.finditer(text)]


def docstrings_with_control_characters(source: str) -> list[int]:
    """Lines of the module, class and function docstrings of ``source`` (as mkdocstrings
    renders them) that hold control characters."""
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return [
        getattr(node, "lineno", 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, nodes)
        and control_characters(ast.get_docstring(node, clean=False) or "")
    ]


def test_control_characters_are_caught() -> None:
    assert control_characters("a\n$D(\text{real})$\n") == [(2, "'\\t'")]
    assert control_characters("plain\ntext\n") == []
    source = 'def f():\n    r"""$\\beta$"""\n\n\nclass C:\n    """$\\beta$"""\n'
    assert docstrings_with_control_characters(source) == [5]  # "\b" is a backspace


@pytest.mark.parametrize(
    "page",
    [*PAGES, ROOT / "README.md", ROOT / "mkdocs.yml"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_pages_hold_no_control_characters(page: Path) -> None:
    assert control_characters(page.read_text()) == [], page


def test_rendered_docstrings_hold_no_control_characters() -> None:
    """The API pages render the docstrings of lipreg and its integrations."""
    found = {
        str(source.relative_to(ROOT)): lines
        for source in SOURCES
        if (lines := docstrings_with_control_characters(source.read_text()))
    }
    assert found == {}


def test_pages_speak_to_their_readers() -> None:
    """Readers of the site cannot see the project's issue tracker."""
    for page in [*PAGES, ROOT / "README.md"]:
        said = re.findall(r"\b(?:the|this|that) issue(?:'s)?\b", page.read_text(), flags=re.I)
        assert said == [], (page, said)


# --- navigation and pictures ------------------------------------------------------------


def nav_files(entries: object) -> list[str]:
    if isinstance(entries, str):
        return [entries]
    if isinstance(entries, list):
        return [f for e in entries for f in nav_files(e)]
    if isinstance(entries, dict):
        return [f for v in entries.values() for f in nav_files(v)]
    raise TypeError(f"unexpected nav entry {entries!r}")


def test_nav_lists_every_page_and_only_existing_ones() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = nav_files(config["nav"])
    pages = {str(p.relative_to(DOCS)) for p in PAGES}
    assert sorted(set(listed) - pages) == [], "nav entries without a page"
    assert sorted(pages - set(listed)) == [], "pages missing from the nav in mkdocs.yml"
    assert len(listed) == len(set(listed)), "a page is listed twice"


def test_every_picture_exists_and_comes_from_a_script() -> None:
    scripts = "".join(p.read_text() for p in PICTURE_SOURCES)
    pictures = {
        (page.parent / link).resolve()
        for page in PAGES
        for link in re.findall(r"!\[[^\]]*\]\(([^)\s]+\.png)\)", page.read_text())
    }
    assert pictures, "the pages show no picture"
    for picture in pictures:
        assert picture.exists(), picture
        assert picture.name in scripts, (
            f"no script in docs/scripts or benchmarks writes {picture.name}"
        )


def test_the_quality_studies_count_as_picture_scripts() -> None:
    """docs/studies.md may show the figures that the studies write with --figures docs/img."""
    sources = "".join(p.read_text() for p in PICTURE_SOURCES)
    for name in ("norm_study_sobolev.png", "norm_study_lp.png", "method_race.png"):
        assert name in sources, name


# Options that make the longer picture scripts quick.
QUICK = {
    "critic_surfaces.py": ["--steps", "5"],
    "main_job_samples.py": ["--steps", "2"],
    "fashion_validation.py": ["--size", "300"],
}
# Scripts that read data no test may require: they run where it is installed.
NEEDS = {"fashion_validation.py": Path("/usr/share/datasets/fashion-mnist")}


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_picture_scripts_run(script: Path, tmp_path: Path) -> None:
    if script.name in NEEDS and not NEEDS[script.name].is_dir():
        pytest.skip(f"{script.name} needs {NEEDS[script.name]}")
    subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path), *QUICK.get(script.name, [])],
        check=True,
        capture_output=True,
        timeout=300,
    )
    written = [p.name for p in tmp_path.glob("*.png")]
    assert written == [script.stem + ".png"], written


# --- the generated CLI reference -------------------------------------------------------


def load_hooks() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return hooks


def test_cli_marker_is_replaced_by_the_help_of_every_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def build_parser() -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="lipreg train", description="Train a GAN.")
        parser.add_argument("--norm", default="l2", help="norm spec of B")
        sub = parser.add_subparsers(dest="command")
        sub.add_parser("resume", help="continue a run").add_argument("--run-dir", required=True)
        return parser

    monkeypatch.setitem(
        sys.modules, "lipreg.train.cli", types.SimpleNamespace(build_parser=build_parser)
    )
    hooks = load_hooks()
    page = f"# Trainer\n\n{hooks.CLI_MARKER}\n\nAfter."
    out = hooks.on_page_markdown(page)
    assert hooks.CLI_MARKER not in out and out.endswith("After.")
    assert "--norm NORM" in out and "norm spec of B" in out
    assert "lipreg train resume" in out and "--run-dir RUN_DIR" in out


def test_cli_reference_fails_loudly_only_where_it_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "lipreg.train.cli", None)  # import raises ImportError
    hooks = load_hooks()
    assert hooks.on_page_markdown("# Home\n") == "# Home\n"
    with pytest.raises(RuntimeError, match=r"lipreg\.train\.cli cannot be imported"):
        hooks.on_page_markdown(f"# Trainer\n{hooks.CLI_MARKER}\n")


def test_pages_with_the_cli_marker_render_with_the_real_parser() -> None:
    hooks = load_hooks()
    trainer = DOCS / "trainer.md"
    if trainer.exists():  # its CLI reference must be the generated one
        assert hooks.CLI_MARKER in trainer.read_text()
    for page in PAGES:
        text = page.read_text()
        if hooks.CLI_MARKER in text:
            out = hooks.on_page_markdown(text)
            assert "usage:" in out and hooks.CLI_MARKER not in out, page


# --- mathematics rendered at build time ------------------------------------------------


def load_script(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, DOCS / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rendered(page: Path) -> str:
    """``page`` as MkDocs renders its body: the site's Markdown extensions, then the hook that
    turns formulas into MathML."""
    import markdown

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    names = [e if isinstance(e, str) else next(iter(e)) for e in config["markdown_extensions"]]
    options = {
        k: v for e in config["markdown_extensions"] if isinstance(e, dict) for k, v in e.items()
    }
    html = markdown.markdown(page.read_text(), extensions=names, extension_configs=options)
    result: str = load_hooks().render_math(html, str(page.relative_to(DOCS)))
    return result


def test_every_formula_of_every_page_becomes_mathml() -> None:
    """No TeX is left for a browser script to typeset: the site shows its formulas offline
    (docs/scripts/check_math.py checks the built site in Chromium)."""
    check = load_script("check_math")
    formulas = 0
    for page in PAGES:
        html = rendered(page)
        formulas += html.count("<math ")
        text = check._Text()
        text.feed(html)
        left = [t.strip() for t in text.text if check.DELIMITERS.search(t)]
        assert left == [], (page, left)
    assert formulas > 400, formulas


def test_the_site_loads_nothing_from_the_network() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["theme"].get("font") is False  # no web fonts
    for key in ("extra_javascript", "extra_css"):
        for entry in config.get(key, []):
            assert not re.match(r"(https?:)?//", str(entry)), (key, entry)


def test_a_formula_that_cannot_be_rendered_stops_the_build() -> None:
    hooks = load_hooks()
    page = '<p><span class="arithmatex">\\(\\arg\\max_c p\\)</span></p>'
    with pytest.raises(
        RuntimeError, match=r"metrics\.md: the formula .* latex2mathml does not know \\arg"
    ):
        hooks.render_math(page, "metrics.md")
    block = hooks.to_mathml("\\sup_{h \\neq 0} x", block=True)
    # TeX's limits: under the operator in display style, beside it inline (movablelimits)
    assert '<munder><mo movablelimits="true">sup</mo>' in block
    assert '<annotation encoding="application/x-tex">\\sup_{h \\neq 0} x</annotation>' in block


def test_formulas_in_headings_are_rendered_in_the_table_of_contents() -> None:
    hooks = load_hooks()
    item = types.SimpleNamespace(title="What R1 in \\(W^{s,2}\\) penalises", children=[])
    hooks.render_toc_math([types.SimpleNamespace(title="Norms", children=[item])], "x.md")
    assert item.title.startswith("What R1 in <math ") and "\\(" not in item.title


# --- the API reference ------------------------------------------------------------------


def test_api_reference_documents_every_public_name() -> None:
    import lipreg
    import lipreg.norms

    api = "".join(p.read_text() for p in (DOCS / "api").glob("*.md"))
    documented = set(re.findall(r"^::: ([\w.]+)\s*$", api, flags=re.MULTILINE))
    expected = {f"lipreg.{n}" for n in lipreg.__all__ if n != "__version__"}
    expected |= {f"lipreg.norms.{n}" for n in lipreg.norms.__all__}
    # Norms may be documented under either path; the integrations as whole modules.
    missing = {
        name
        for name in expected
        if name not in documented and name.replace("lipreg.", "lipreg.norms.", 1) not in documented
    }
    integrations = sorted(p.name for p in (ROOT / "integrations").iterdir() if p.is_dir())
    missing |= {
        f"lipreg.integrations.{m}"
        for m in integrations
        if (ROOT / "integrations" / m / "__init__.py").exists()
        and f"lipreg.integrations.{m}" not in documented
    }
    assert sorted(missing) == [], "public names without a ::: block in docs/api/*.md"


def test_getting_started_shows_the_readme_commands() -> None:
    """The docs repeat the README's two set-up commands verbatim, so they cannot drift."""
    readme = (ROOT / "README.md").read_text()
    page = (DOCS / "getting-started.md").read_text()
    commands = re.findall(r"^(pip install .*)$", readme, flags=re.MULTILINE)
    assert len(commands) == 2
    assert re.findall(r"^(pip install .*)$", page, flags=re.MULTILINE) == commands
