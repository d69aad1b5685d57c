"""Fetch the JavaScript that renders saved ipywidgets in the HTML book, for offline use.

By default myst-nb makes every page that holds widget state load RequireJS and
``@jupyter-widgets/html-manager`` from public CDNs. The book serves pinned copies instead:
this script downloads the two npm packages with ``npm pack`` (the registry npm is configured
for), checks each tarball against the integrity hash pinned below, and unpacks the few files
the browser needs into ``DEST/jupyter-widgets/``:

- ``require.js``    RequireJS (the html-manager's AMD bundle needs a module loader);
- ``embed-amd.js``  the html-manager with the core widget models (base, controls, output)
  bundled, and the Font Awesome font files it loads;
- ``widget-setup.js`` copied from this folder (not from npm): loaded between the two, it makes
  the html-manager load its fonts from ``DEST/jupyter-widgets/`` and bridges ipywidgets'
  MathJax 2 call to the book's MathJax 3.

``_config.yml`` adds ``DEST`` to ``html_static_path`` and names the three scripts in
``nb_ipywidgets_js``. ``DEST`` (default ``.cache/widget-js``) is git-ignored and is not
``_static/``, because Jupyter Book 1 injects every ``.js`` under a root ``_static/`` into every
page.

Idempotent: when ``DEST`` already holds the files of the pinned versions (checked against the
sha256 values recorded at unpack time and the pinned versions), nothing is downloaded, so an
offline rebuild works once the files are there. ``--force`` fetches again.

The html-manager version follows ipywidgets: ipywidgets 8.1 pairs with html-manager 1.0.x
(whose ``@jupyter-widgets/controls`` 5.0.x matches the JupyterLab widget manager in the venv).

Usage: python book/_tools/fetch_widget_js.py [DEST] [--force]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DEST = ROOT / ".cache" / "widget-js"
SUBDIR = "jupyter-widgets"
# The book's own loader (in git), copied next to the npm files: it lets the html-manager find
# its fonts in that folder and bridges ipywidgets' MathJax 2 call to the book's MathJax 3.
SETUP_JS = Path(__file__).resolve().parent / "widget-setup.js"
MANIFEST = ".manifest.json"  # hidden: Sphinx does not copy dot-files from html_static_path

# name, version, npm integrity (sha512 of the tarball), members to unpack -> file name.
PACKAGES = [
    {
        "name": "requirejs",
        "version": "2.3.8",
        "integrity": (
            "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+"
            "Jd5otXKGNehIonFlyQXSowL6Mw=="
        ),
        "files": {"package/require.js": "require.js"},
    },
    {
        "name": "@jupyter-widgets/html-manager",
        "version": "1.0.15",
        "integrity": (
            "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//"
            "SABeNz1yp47bCrJ3CQA=="
        ),
        "files": {"package/dist/embed-amd.js": "embed-amd.js"},
        # Font Awesome files that embed-amd.js loads relative to its own URL.
        "font_suffixes": (".woff2", ".woff", ".ttf", ".eot", ".svg"),
    },
]


def _sri(data: bytes) -> str:
    """Subresource-integrity string (``sha512-<base64>``), the format npm records."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pins() -> dict[str, str]:
    return {f"{p['name']}@{p['version']}": p["integrity"] for p in PACKAGES}


def is_current(dest: Path) -> bool:
    """True when ``dest`` holds the pinned versions and every recorded sha256 still matches."""
    manifest_path = dest / MANIFEST
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("packages") != _pins() or not manifest.get("files"):
        return False
    for rel, digest in manifest["files"].items():
        path = dest / rel
        if not path.is_file() or _sha256(path) != digest:
            return False
    return True


def _npm_pack(spec: str, workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        sys.exit(
            "fetch_widget_js: `npm` was not found. Install Node.js/npm (e.g. apt-get install npm),"
            " or copy a DEST folder made on another machine."
        )
    result = subprocess.run(
        [npm, "pack", spec, "--json", "--pack-destination", str(workdir)],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"fetch_widget_js: `npm pack {spec}` failed:\n{result.stderr.strip()}")
    info = json.loads(result.stdout)
    return workdir / info[0]["filename"]


def _unpack(package: dict, tarball: Path, out: Path) -> list[str]:
    """Unpack the needed members of ``tarball`` into ``out``; return the file names written."""
    data = tarball.read_bytes()
    actual = _sri(data)
    if actual != package["integrity"]:
        sys.exit(
            f"fetch_widget_js: integrity mismatch for {package['name']}@{package['version']}:\n"
            f"  expected {package['integrity']}\n  got      {actual}"
        )
    wanted = dict(package["files"])
    suffixes = package.get("font_suffixes", ())
    written = []
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if name in wanted:
                target = wanted.pop(name)
            elif (
                suffixes
                and name.startswith("package/dist/")
                and name.count("/") == 2
                and name.endswith(suffixes)
            ):
                target = name.rsplit("/", 1)[1]
            else:
                continue
            if not member.isfile():
                sys.exit(f"fetch_widget_js: {name} in {tarball.name} is not a regular file")
            source = tar.extractfile(member)
            assert source is not None
            (out / target).write_bytes(source.read())
            written.append(target)
    if wanted:
        sys.exit(f"fetch_widget_js: {tarball.name} lacks {', '.join(wanted)}")
    return written


def install_setup_script(dest: Path) -> None:
    """Copy the book's own small loader script (kept in git) next to the npm files."""
    target = dest / SUBDIR / SETUP_JS.name
    data = SETUP_JS.read_bytes()
    if not target.is_file() or target.read_bytes() != data:
        target.write_bytes(data)
        print(f"fetch_widget_js: installed {SETUP_JS.name}")


def fetch(dest: Path, force: bool = False) -> None:
    if not force and is_current(dest):
        print(f"fetch_widget_js: {dest} is up to date")
        install_setup_script(dest)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".widget-js-") as tmp:
        tmp_path = Path(tmp)
        staging = tmp_path / "dest"
        out = staging / SUBDIR
        out.mkdir(parents=True)
        files: dict[str, str] = {}
        for package in PACKAGES:
            spec = f"{package['name']}@{package['version']}"
            print(f"fetch_widget_js: npm pack {spec}")
            tarball = _npm_pack(spec, tmp_path)
            for name in _unpack(package, tarball, out):
                files[f"{SUBDIR}/{name}"] = _sha256(out / name)
        manifest = {"packages": _pins(), "files": dict(sorted(files.items()))}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        # Swap in the new folder only once everything has been fetched and checked.
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    print(f"fetch_widget_js: wrote {len(files)} files to {dest}")
    install_setup_script(dest)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", nargs="?", type=Path, default=DEFAULT_DEST)
    parser.add_argument("--force", action="store_true", help="fetch even if up to date")
    parser.add_argument(
        "--check", action="store_true", help="only check; exit 1 if DEST is missing or stale"
    )
    args = parser.parse_args(argv)
    dest = args.dest if args.dest.is_absolute() else Path.cwd() / args.dest
    if args.check:
        setup = dest / SUBDIR / SETUP_JS.name
        ok = is_current(dest) and setup.is_file() and setup.read_bytes() == SETUP_JS.read_bytes()
        print(f"fetch_widget_js: {dest} is {'up to date' if ok else 'missing or stale'}")
        sys.exit(0 if ok else 1)
    fetch(dest, force=args.force)


if __name__ == "__main__":
    main()
