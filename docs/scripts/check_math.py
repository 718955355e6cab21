"""Check that the documentation site shows its mathematics without network.

Builds the site (``mkdocs build --strict``, or takes a built one with ``--site``), serves it
on 127.0.0.1, and loads every page in headless Chromium (Debian's ``chromium``; the machine
needs no network: the site loads no script, font or style from elsewhere). A script added to
each page as it is served reports what the browser rendered: visible text that still holds
a TeX delimiter (``\\(``, ``\\)``, ``\\[``, ``\\]``, ``$$``) outside code, ``<math>`` elements
laid out without a size, MathML errors, and fractions whose numerator is not above their
denominator (a browser that does not lay out MathML). ``--screenshots DIR`` also saves a
picture of the pages with the most formulas, to look at. Exits 1 with the problems found.

``--static`` checks a built site without a browser (what CI runs after its build): every
formula converted to MathML, no TeX delimiter left in the text outside code, nothing loaded
from another host.

    python docs/scripts/check_math.py --screenshots /tmp/math
    python docs/scripts/check_math.py --static --site site
"""

from __future__ import annotations

import argparse
import functools
import html
import html.parser
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DELIMITERS = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$")
MARKER = "lipreg-math-check"

# Added before </body> of every page served: writes what the browser rendered into the DOM,
# which Chromium's --dump-dom then prints.
PROBE = """<script>(() => {
  const skip = "pre, code, script, style, annotation, kbd, samp";
  const delimiters = /\\\\\\(|\\\\\\)|\\\\\\[|\\\\\\]|\\$\\$/;
  const raw = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, element = node.parentElement;
    if (!element || element.closest(skip) || !element.checkVisibility()) continue;
    if (delimiters.test(node.data)) raw.push(node.data.trim().slice(0, 100));
  }
  const visible = [...document.querySelectorAll("math")].filter((m) => m.checkVisibility());
  const flat = visible.filter((m) => {
    const box = m.getBoundingClientRect();
    return box.width === 0 || box.height === 0;
  }).length;
  const upside = [...document.querySelectorAll("mfrac")].filter((f) => {
    if (!f.checkVisibility() || f.children.length !== 2) return false;
    const [top, bottom] = [...f.children].map((c) => c.getBoundingClientRect());
    return !(top.bottom <= bottom.top + 1);
  }).length;
  const report = document.createElement("pre");
  report.id = "MARKER";
  report.textContent = JSON.stringify({
    raw, maths: visible.length, flat, upside,
    errors: document.querySelectorAll("merror").length,
  });
  document.body.appendChild(report);
})();</script>""".replace("MARKER", MARKER)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def build(site: Path) -> None:
    """``mkdocs build --strict`` of the repository's site into ``site``."""
    subprocess.run(
        ["mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def pages(site: Path) -> list[Path]:
    """The pages of a built site (not the 404 page, not search's assets)."""
    return sorted(p for p in site.rglob("index.html") if "assets" not in p.parts)


class _Text(html.parser.HTMLParser):
    """The text of a page outside code and MathML annotations, and where it loads from."""

    SKIPPED = frozenset({"pre", "code", "script", "style", "annotation", "kbd", "samp"})

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.text: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self.depth += 1
        values = dict(attrs)
        loaded = values.get("src") if tag in ("script", "img", "iframe") else None
        if tag == "link" and values.get("rel") in ("stylesheet", "preconnect", "preload"):
            loaded = values.get("href")
        if loaded and re.match(r"(https?:)?//", loaded):
            self.external.append(loaded)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.text.append(data)


def static_problems(site: Path) -> list[str]:
    """What a built ``site`` gets wrong without a browser (see the module docstring)."""
    problems = []
    formulas = 0
    for page in pages(site):
        content = page.read_text()
        name = str(page.relative_to(site))
        formulas += content.count("<math ")
        if re.search(r'class="arithmatex">\s*\\[(\[]', content):
            problems.append(f"{name}: a formula was left as TeX")
        parser = _Text()
        parser.feed(content)
        for text in parser.text:
            if DELIMITERS.search(text):
                problems.append(f"{name}: TeX delimiters in the text: {text.strip()[:100]!r}")
        problems += [f"{name}: loads {url} from the network" for url in parser.external]
    if not formulas:
        problems.append(f"{site}: no page holds a <math> element")
    return problems


class _Handler(SimpleHTTPRequestHandler):
    """Serves the site, with :data:`PROBE` added to every HTML page."""

    def send_head(self):  # type: ignore[no-untyped-def]
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if path.suffix != ".html" or not path.is_file():
            return super().send_head()
        body = path.read_text().replace("</body>", PROBE + "</body>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)

    def log_message(self, *args: object) -> None:
        pass


def browser_problems(
    site: Path, chromium: str, screenshots: Path | None, shots: int = 3
) -> tuple[list[str], int]:
    """What headless Chromium renders wrong on every page of ``site``, and how many
    ``<math>`` elements it laid out; saves screenshots of the ``shots`` pages with the most
    formulas into ``screenshots``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=site))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: list[str] = []
    counts: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory() as profile:
            run = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
            for page in pages(site):
                name = str(page.parent.relative_to(site))
                url = base + ("" if name == "." else name + "/")
                dom = subprocess.run(
                    [*run, "--virtual-time-budget=5000", "--dump-dom", url],
                    capture_output=True,
                    text=True,
                    timeout=120,
                ).stdout
                found = re.search(rf'<pre id="{MARKER}">(.*?)</pre>', dom, flags=re.DOTALL)
                if not found:
                    problems.append(f"{url}: the page did not report (did it load?)")
                    continue
                report = json.loads(html.unescape(found.group(1)))
                counts[url] = report["maths"]
                problems += [
                    f"{url}: TeX delimiters in the rendered text: {t!r}" for t in report["raw"]
                ]
                for key, what in (
                    ("flat", "<math> elements laid out without a size"),
                    ("upside", "fractions not laid out as fractions"),
                    ("errors", "MathML errors (<merror>)"),
                ):
                    if report[key]:
                        problems.append(f"{url}: {report[key]} {what}")
            if screenshots is not None:
                screenshots.mkdir(parents=True, exist_ok=True)
                for url in sorted(counts, key=counts.get, reverse=True)[:shots]:  # type: ignore[arg-type]
                    stem = url.removeprefix(base).strip("/").replace("/", "_") or "index"
                    subprocess.run(
                        [
                            *run,
                            "--window-size=1280,2400",
                            f"--screenshot={screenshots / stem}.png",
                            url,
                        ],
                        capture_output=True,
                        timeout=120,
                        check=True,
                    )
    finally:
        server.shutdown()
        server.server_close()
    return problems, sum(counts.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, help="a built site (default: build one)")
    parser.add_argument("--static", action="store_true", help="check the HTML, no browser")
    parser.add_argument("--chromium", default="chromium", help="the browser (default: chromium)")
    parser.add_argument("--screenshots", type=Path, help="save pictures of pages here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = args.site
        if site is None:
            site = Path(tmp) / "site"
            build(site)
        problems = static_problems(site)
        count = len(pages(site))
        laid_out = None
        if not args.static:
            chromium = shutil.which(args.chromium)
            if chromium is None:
                print(f"{args.chromium} not found: apt-get install chromium", file=sys.stderr)
                return 2
            found, laid_out = browser_problems(site, chromium, args.screenshots)
            problems += found
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"check_math: {len(problems)} problems in {count} pages", file=sys.stderr)
        return 1
    shown = "" if laid_out is None else f"; Chromium laid out {laid_out} formulas"
    print(f"check_math: {count} pages, no TeX left as text{shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
