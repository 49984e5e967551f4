"""Check the built documentation site in a real browser (headless Chromium through Playwright).

Run after the build, from the project root::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python docs/check_site.py

It serves ``docs/_build/html`` on a loopback port, opens the index, the API page of
``HierarchicalRanker`` and a gallery page, saves a full-page screenshot of each to
``docs/_build/screenshots/``, and fails (exit status 1) when an image on one of them did not
load (``naturalWidth == 0``) or a local link on any page of the site points at a missing file or
a missing anchor. Chromium is Debian's (``apt-get install chromium``; ``CHROMIUM`` names another
binary); Playwright only drives it.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

ROOT = Path(__file__).resolve().parent
SITE = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
PAGES = {
    "index": "index.html",
    "api_hierarchical_ranker": "generated/skhier.HierarchicalRanker.html",
    "gallery_deep_hierarchy": "auto_examples/plot_deep_hierarchy.html",
}
# Debian's Chromium as root in a container: no sandbox, no GPU, and none of the background
# connections that a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Every image on the page, made to load now (no lazy loading), then whether it has pixels.
_IMAGES_JS = """
async () => {
  const images = Array.from(document.images);
  for (const img of images) { img.loading = "eager"; }
  await Promise.all(images.map((img) => img.decode().catch(() => null)));
  return images.map((img) => ({src: img.currentSrc || img.src, width: img.naturalWidth}));
}
"""


class _Page(HTMLParser):
    """The ids and names a page defines (anchors) and the links it makes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.anchors, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.anchors.add(attrs[key])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in ("img", "script") and attrs.get("src"):
            self.links.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.links.append(attrs["href"])


@functools.cache
def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def broken_links(site: Path) -> list[str]:
    """Local links of every page of the site whose file or anchor does not exist.

    Parameters
    ----------
    site : pathlib.Path
        The built site's folder.

    Returns
    -------
    list of str
        ``page: link (why)``, one per broken link.
    """
    problems = []
    for page_path in sorted(site.rglob("*.html")):
        base = page_path.relative_to(site).as_posix()
        for link in _parse(page_path).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue  # not a file of the site
            target = urlsplit(urljoin(base, link))
            path = unquote(target.path)
            file = page_path if not parts.path else site / path
            if file.is_dir():
                file = file / "index.html"
            if not file.is_file():
                problems.append(f"{base}: {link} (no file {file.relative_to(site).as_posix()})")
                continue
            fragment = unquote(target.fragment)
            if fragment and file.suffix == ".html" and fragment not in _parse(file).anchors:
                problems.append(f"{base}: {link} (no anchor #{fragment})")
    return problems


def _serve(site: Path):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def check_pages(site: Path, shots: Path) -> list[str]:
    """Open the pages in headless Chromium, screenshot them, and list the images without pixels.

    Parameters
    ----------
    site : pathlib.Path
        The built site's folder.
    shots : pathlib.Path
        Where the screenshots go (``<name>.png``).

    Returns
    -------
    list of str
        ``page: image (why)``, one per problem; a page that fails to load is one too.
    """
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    if executable is None:
        return ["no Chromium found: apt-get install chromium (or set CHROMIUM)"]
    shots.mkdir(parents=True, exist_ok=True)
    server = _serve(site)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    problems = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            for name, rel in PAGES.items():
                errors.clear()
                response = page.goto(urljoin(url, rel), wait_until="load")
                if response is None or not response.ok:
                    status = response.status if response else "no response"
                    problems.append(f"{rel}: did not load ({status})")
                    continue
                images = page.evaluate(_IMAGES_JS)
                for img in images:
                    if not img["width"]:
                        problems.append(f"{rel}: image {img['src']} did not load (naturalWidth 0)")
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                n_links = page.evaluate("document.querySelectorAll('a[href]').length")
                print(f"{rel}: {len(images)} images, {n_links} links, saved {name}.png")
                for err in errors:
                    problems.append(f"{rel}: script error {err}")
            browser.close()
    finally:
        server.shutdown()
    return problems


def main(argv=None) -> int:
    """Check the site; print the problems.

    Parameters
    ----------
    argv : list of str or None
        Command-line arguments (None reads ``sys.argv``).

    Returns
    -------
    int
        0 when every check passed, 1 otherwise.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=SITE, help="the built site")
    parser.add_argument("--screenshots", type=Path, default=SHOTS, help="where they go")
    args = parser.parse_args(argv)
    site = args.site.resolve()
    missing = [rel for rel in PAGES.values() if not (site / rel).is_file()]
    if missing:
        print(f"not built: {', '.join(missing)} (build the site first)", file=sys.stderr)
        return 1
    problems = broken_links(site)
    n_pages = len(list(site.rglob("*.html")))
    print(f"local links of {n_pages} pages checked: {len(problems)} broken")
    problems += check_pages(site, args.screenshots.resolve())
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if not problems:
        print(f"site checked; screenshots in {args.screenshots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
