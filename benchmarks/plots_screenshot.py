"""Does `dvc plots show` render every plot offline? Renders dvc_plots/index.html in headless Chromium with every
network request refused, counts the images that drew (complete, non-zero size) against the plots dvc.yaml
declares, and saves a full-page screenshot.

    dvc plots show && python benchmarks/plots_screenshot.py [--page dvc_plots/index.html] [--out plots.png]

Needs Chromium (Debian: apt-get install chromium) and playwright (pip install playwright; its own browser
download is not needed: the system Chromium is used). Exit 1 if a plot did not draw.
"""
import argparse
import shutil
import sys
from pathlib import Path

import yaml


def declared_plots(dvc_yaml: Path) -> list[str]:
    plots = yaml.safe_load(dvc_yaml.read_text()).get("plots", [])
    return [p if isinstance(p, str) else next(iter(p)) for p in plots]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--page", default="dvc_plots/index.html")
    parser.add_argument("--out", default="dvc_plots/screenshot.png")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = parser.parse_args()
    page_path = Path(args.page).resolve()
    if not page_path.is_file():
        sys.exit(f"error: {args.page}: not found (run dvc plots show first)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("error: playwright is not installed (pip install playwright)")
    blocked = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})

        def route(request_route):
            if request_route.request.url.startswith(("file:", "data:")):
                request_route.continue_()
            else:  # offline: whatever wants the network does not get it
                blocked.append(request_route.request.url)
                request_route.abort()
        page.route("**/*", route)
        page.goto(page_path.as_uri(), wait_until="load")
        page.wait_for_timeout(1000)
        images = page.evaluate("""() => Array.from(document.images).map(i => ({src: i.getAttribute('src').slice(0, 60),
                                     ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth, h: i.naturalHeight}))""")
        # a plot container (DVC gives each an id) that holds nothing drawn: a vega plot whose library never came
        empty_vega = page.evaluate("() => Array.from(document.querySelectorAll('body div[id]'))"
                                   ".filter(e => !e.querySelector('img, canvas, svg')).length")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    declared = declared_plots(Path("dvc.yaml"))
    drawn = sum(i["ok"] for i in images)
    for i in images:
        print(f"{'drawn ' if i['ok'] else 'BLANK '} {i['w']}x{i['h']}  {i['src']}")
    print(f"{drawn} of {len(images)} images drawn; dvc.yaml declares {len(declared)} plots; "
          f"{empty_vega} empty plot containers; {len(blocked)} network requests refused; screenshot: {args.out}")
    if drawn < len(declared) or drawn < len(images) or empty_vega or blocked:
        sys.exit(1)


if __name__ == "__main__":
    main()
