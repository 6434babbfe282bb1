"""The repository's address is written once: ``repository.url`` in ``_config.yml``.

The pages a reader opens outside the built book carry it as text (a notebook on Colab cannot read
``_config.yml``): the Colab badges, the install lines, the links to files of the repository and
the citation. :func:`project_links` finds them and ``tests/notebooks/test_committed.py`` checks
that each names the configured address; after ``_config.yml`` changes,

    python book/_tools/repository.py https://github.com/OLD-OWNER/OLD-NAME

rewrites every link to the old address into the configured one.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("book/*.ipynb", "book/*.md", "README.md")
"""The files that carry the address, relative to the repository root."""

_SLUG = r"[A-Za-z0-9_.-]+/[A-Za-z0-9_-]+"
_LINK = re.compile(
    rf"colab\.research\.google\.com/github/(?P<colab>{_SLUG})/"  # a Colab badge
    rf"|git\+https://github\.com/(?P<install>{_SLUG})"  # a pip install line
    rf"|https://github\.com/(?P<blob>{_SLUG})/blob/"  # a file of the repository
    rf"|url\s*=\s*\{{https://github\.com/(?P<cite>{_SLUG})\}}"  # the BibTeX citation
)


def repository_url(root: Path = ROOT) -> str:
    """``repository.url`` of ``root/_config.yml``, without a trailing slash."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    return str(config["repository"]["url"]).rstrip("/")


def slug(url: str) -> str:
    """``owner/name`` of a GitHub address."""
    match = re.fullmatch(rf"https://github\.com/({_SLUG})/?", url)
    if match is None:
        raise ValueError(f"{url!r}: expected https://github.com/OWNER/NAME")
    return match.group(1)


def pages(root: Path = ROOT) -> list[Path]:
    """The files of :data:`PAGES` under ``root``."""
    return sorted(p for pattern in PAGES for p in root.glob(pattern))


def project_links(text: str) -> list[str]:
    """The ``owner/name`` that each Colab badge, install line, link to a file (``/blob/``)
    and BibTeX ``url`` in ``text`` names, in order."""
    return [next(v for v in m.groupdict().values() if v) for m in _LINK.finditer(text)]


def rewrite(text: str, old: str, new: str) -> str:
    """``text`` with every project link to ``old`` (``owner/name``) pointing to ``new``."""
    def swap(m: re.Match[str]) -> str:
        found = next(v for v in m.groupdict().values() if v)
        return m.group(0).replace(found, new) if found == old else m.group(0)
    return _LINK.sub(swap, text)


def main(argv: list[str]) -> int:
    """Rewrite the project links to ``argv[0]`` into ``_config.yml``'s address."""
    if len(argv) != 1:
        print("usage: python book/_tools/repository.py https://github.com/OLD-OWNER/OLD-NAME",
              file=sys.stderr)
        return 2
    old, new = slug(argv[0]), slug(repository_url())
    for path in pages():
        text = path.read_text(encoding="utf-8")
        changed = rewrite(text, old, new)
        if changed != text:
            path.write_text(changed, encoding="utf-8")
            print(f"{path.relative_to(ROOT)}: {old} -> {new}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
