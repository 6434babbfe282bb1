"""Download the public datasets from their official archives, verify them, extract them in place.

``download("cub", root)`` fetches ``CUB_200_2011.tgz`` from CaltechDATA, checks its MD5 and
extracts it so that ``root/CUB_200_2011/`` is the tree :class:`tdsa.data.CUB200` reads;
``aircraft`` gives ``root/fgvc-aircraft-2013b/`` and ``flowers102`` ``root/flowers-102/`` (the
URLs and checksums torchvision's loaders use; torchvision checks no MD5 for the Aircraft
archive, this module checks the one other loaders of that archive check). Stanford Cars and
NABirds have no official direct link: :func:`download` raises a one-line
:class:`tdsa.errors.ConfigError` saying where to get them and which tree to make (NABirds,
once fetched behind its terms-of-use form, can be passed as ``url``).

Robustness: a download goes to ``<file>.part`` and is resumed with an HTTP ``Range`` request
(within a call, up to ``attempts`` times, and by the next call); the checksum is verified
before anything is extracted; the archive is extracted into a temporary folder next to the
target and moved into place only when complete, so a wrong checksum or a broken archive
leaves no tree behind. ``url`` may be a mirror (``http(s)://``), a ``file://`` URL or a local
path; ``md5`` states the checksum of a file that is not the official one. The book's page
*Datasets* (``book/datasets.md``) and ``data/README.md`` describe it for users.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tdsa.errors import ConfigError, DataError

log = logging.getLogger("tdsa.data")

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Resource:
    """One file of a dataset: where it is, its MD5 (None: not checked) and whether it is an
    archive to extract (else a file placed in the dataset folder)."""

    url: str
    md5: str | None
    archive: bool = True

    @property
    def filename(self) -> str:
        return Path(urllib.parse.urlparse(self.url).path).name


@dataclass(frozen=True)
class Source:
    """A downloadable dataset: its files (the first is the archive ``url``/``md5`` replace),
    the folder it makes under the root, the folder of that name inside the archive (None: the
    archive's top level is the folder's content), the files a complete folder has, and the
    official page."""

    resources: tuple[Resource, ...]
    folder: str
    archive_folder: str | None
    required: tuple[str, ...]
    page: str


SOURCES: dict[str, Source] = {
    "cub": Source(
        (Resource("https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
                  "97eceeb196236b17998738112f37df78"),),
        "CUB_200_2011", "CUB_200_2011",
        ("images.txt", "classes.txt", "image_class_labels.txt", "train_test_split.txt",
         "bounding_boxes.txt", "parts/part_locs.txt", "images"),
        "https://www.vision.caltech.edu/datasets/cub_200_2011/"),
    "aircraft": Source(
        (Resource("https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/"
                  "fgvc-aircraft-2013b.tar.gz", "d4acdd33327262359767eeaa97a4f732"),),
        "fgvc-aircraft-2013b", "fgvc-aircraft-2013b",
        ("data/variants.txt", "data/images_variant_trainval.txt", "data/images_variant_test.txt",
         "data/images"),
        "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/"),
    "flowers102": Source(
        (Resource("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz",
                  "52808999861908f626f3c1f4e79d11fa"),
         Resource("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/imagelabels.mat",
                  "e0620be6f572b9609742df49c70aed4d", archive=False),
         Resource("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/setid.mat",
                  "a5357ecc9cb78c4bef273ce3793fc85c", archive=False)),
        "flowers-102", None, ("jpg", "imagelabels.mat", "setid.mat"),
        "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"),
    # No official direct link: only with url= (the archive from the terms-of-use form).
    "nabirds": Source(
        (), "nabirds", "nabirds",
        ("images.txt", "classes.txt", "image_class_labels.txt", "train_test_split.txt",
         "bounding_boxes.txt", "parts/part_locs.txt", "images"),
        "https://dl.allaboutbirds.org/nabirds"),
}

MANUAL: dict[str, str] = {
    "nabirds": (
        "nabirds: no official direct link: accept the terms at https://dl.allaboutbirds.org/nabirds"
        ", then pass the archive it gives (nabirds.tar.gz) with --url URL_OR_PATH [--md5 HEX], "
        "or extract it yourself so that ROOT/nabirds/images.txt exists (data/README.md)"),
    "cars": (
        "cars: no official direct link (the Stanford pages are offline): get a copy of the "
        "original files (cars_train.tgz, cars_test.tgz, car_devkit.tgz, "
        "cars_test_annos_withlabels.mat) and make ROOT/{devkit/cars_meta.mat, "
        "devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat, cars_train/, cars_test/} "
        "as data/README.md shows; then run `tdsa data check --dataset cars --root ROOT`"),
}


def downloadable() -> list[str]:
    """The names :func:`download` knows (``cars`` only to say where to get it)."""
    return [*SOURCES, *(n for n in MANUAL if n not in SOURCES)]


def is_present(name: str, root: str | Path) -> bool:
    """True when ``root`` (or its dataset folder) already holds the files of ``name``."""
    source = _source(name)
    root = Path(root)
    marker = source.required[0]
    return (root / source.folder / marker).exists() or (root / marker).exists()


def ensure_downloaded(name: str, root: str | Path, **kwargs: Any) -> Path | None:
    """Download ``name`` into ``root`` unless it is already there (see :func:`is_present`);
    return the folder made, or None when nothing was done. ``kwargs`` go to :func:`download`.
    """
    if name not in SOURCES and name not in MANUAL:
        raise ConfigError(f"{name}: nothing to download (downloadable: "
                          f"{', '.join(downloadable())})")
    if name in SOURCES and is_present(name, root):
        return None
    if name == "cars" and _cars_present(Path(root)):
        return None
    return download(name, root, **kwargs)


def _cars_present(root: Path) -> bool:
    return any((base / "devkit" / "cars_meta.mat").is_file()
               for base in (root, root / "stanford_cars"))


def download(name: str, root: str | Path, *, url: str | None = None, md5: str | None = None,
             attempts: int = 3, timeout: float = 60.0, keep_archive: bool = False) -> Path:
    """Download dataset ``name`` into ``root`` and return its folder (``root/CUB_200_2011``,
    ``root/fgvc-aircraft-2013b`` or ``root/flowers-102``).

    ``url`` replaces the archive's URL: a mirror, a ``file://`` URL or a local path (read in
    place); a URL ending in ``/`` is a folder serving every file of the dataset under its
    official name. ``md5`` replaces the archive's checksum (without it the official one
    applies; a dataset with none is checked by format only). An interrupted download is
    resumed from ``<file>.part`` up to ``attempts`` times, and by the next call. Raises
    :class:`tdsa.errors.DataError` (one line) for a failed download, a checksum mismatch (the
    downloaded file is deleted), a broken archive or one without the expected files, and a
    folder that already exists; :class:`tdsa.errors.ConfigError` for ``cars``, for
    ``nabirds`` without ``url``, and for a malformed ``md5``.
    """
    if name in MANUAL and (name not in SOURCES or url is None):
        raise ConfigError(MANUAL[name])
    source = _source(name)
    if md5 is not None and not (len(md5) == 32 and all(c in "0123456789abcdef"
                                                        for c in md5.lower())):
        raise ConfigError(f"--md5 {md5!r} is not an MD5 checksum (32 hexadecimal digits)")
    root = Path(root)
    target = root / source.folder
    if target.exists():
        raise DataError(f"{name}: {target} already exists; check it with `tdsa data check "
                        f"--dataset {name} --root {root}`, or remove it to download again")
    root.mkdir(parents=True, exist_ok=True)
    resources = _resources(name, source, url, md5)
    files = [_obtain(name, res, root, attempts=attempts, timeout=timeout) for res in resources]
    _assemble(name, source, resources, files, root)
    if not keep_archive:
        for res, (path, downloaded) in zip(resources, files, strict=True):
            if downloaded and res.archive:
                path.unlink(missing_ok=True)
    log.info("%s: %s is complete", name, target)
    return target


def _source(name: str) -> Source:
    if name in SOURCES:
        return SOURCES[name]
    if name in MANUAL:
        raise ConfigError(MANUAL[name])
    raise ConfigError(f"{name}: nothing to download (downloadable: {', '.join(downloadable())})")


def _resources(name: str, source: Source, url: str | None, md5: str | None
               ) -> list[Resource]:
    if not source.resources:  # nabirds: the given archive only
        return [Resource(str(url), md5.lower() if md5 else None)]
    resources = list(source.resources)
    if url is not None and url.endswith("/"):
        resources = [Resource(url + r.filename, r.md5, r.archive) for r in resources]
    elif url is not None:
        resources[0] = Resource(url, resources[0].md5, resources[0].archive)
    if md5 is not None:
        resources[0] = Resource(resources[0].url, md5.lower(), resources[0].archive)
    return resources


def _local_path(url: str) -> Path | None:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme in ("http", "https", "ftp"):
        return None
    return Path(url)


def _obtain(name: str, res: Resource, root: Path, *, attempts: int, timeout: float
            ) -> tuple[Path, bool]:
    """The verified file of ``res`` and whether it was downloaded (a local file is read where
    it is)."""
    local = _local_path(res.url)
    if local is not None:
        if not local.is_file():
            raise DataError(f"{name}: {local} is not a file (--url takes an http(s):// or "
                            f"file:// URL or a local path)")
        _verify(name, local, res, fate="left it in place")
        return local, False
    final = root / res.filename
    if final.is_file():  # kept from an earlier call (keep_archive) or put there by hand
        _verify(name, final, res, fate="left it in place: remove it to download again")
        return final, False
    part = root / f"{res.filename}.part"
    _fetch(name, res.url, part, attempts=attempts, timeout=timeout)
    try:
        _verify(name, part, res, fate="deleted it")
    except DataError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, final)
    return final, True


def _fetch(name: str, url: str, part: Path, *, attempts: int, timeout: float) -> None:
    """Download ``url`` into ``part``, resuming what ``part`` already holds."""
    from tdsa.console import progress_bar, progress_enabled

    error: Exception | None = None
    for attempt in range(1, max(attempts, 1) + 1):
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": "tdsa-download"}
        if have:
            headers["Range"] = f"bytes={have}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                resumed = have > 0 and response.status == 206
                start = have if resumed else 0
                length = response.headers.get("Content-Length")
                total = start + int(length) if length is not None else None
                if have:
                    log.info("%s: resuming %s at byte %d", name, url, start) if resumed else \
                        log.info("%s: %s does not resume; downloading it again", name, url)
                else:
                    log.info("%s: downloading %s", name, url)
                with open(part, "ab" if resumed else "wb") as out, progress_bar(
                    total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=part.name.removesuffix(".part"), disable=not progress_enabled(None),
                ) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
            size = part.stat().st_size
            if total is None or size >= total:
                return
            error = DataError(f"connection closed after {size} of {total} bytes")
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # nothing left to send: the part is whole
                return
            raise DataError(f"{name}: download of {url} failed: HTTP {exc.code} {exc.reason}"
                            ) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            error = exc
        if attempt < attempts:
            log.warning("%s: download of %s interrupted (%s); resuming (attempt %d of %d)",
                        name, url, _reason(error), attempt + 1, attempts)
    size = part.stat().st_size if part.exists() else 0
    raise DataError(f"{name}: download of {url} interrupted ({_reason(error)}); {size} bytes "
                    f"kept in {part}: run the same command again to resume")


def _reason(error: Exception | None) -> str:
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        return str(error.reason)
    if isinstance(error, http.client.IncompleteRead):
        return f"connection closed, {len(error.partial)} bytes short of the response"
    return str(error) or type(error).__name__


def file_md5(path: str | Path) -> str:
    """The MD5 hex digest of a file, read in 1 MiB chunks.
    """
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(name: str, path: Path, res: Resource, *, fate: str) -> None:
    if res.md5 is None:
        log.info("%s: %s has no published checksum: checked by format only", name, res.filename)
        return
    got = file_md5(path)
    if got != res.md5:
        raise DataError(f"{name}: checksum mismatch for {res.url}: md5 {got}, expected "
                        f"{res.md5} (truncated, corrupt or another file; {fate}, extracted "
                        f"nothing; pass --md5 if it is a different release)")
    log.info("%s: %s md5 ok", name, res.filename)


def _assemble(name: str, source: Source, resources: list[Resource],
              files: list[tuple[Path, bool]], root: Path) -> None:
    """Extract the archive into a temporary folder next to the target, add the single files,
    check that the folder is complete and move it into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{source.folder}.", suffix=".extracting", dir=root))
    try:
        archive = next(path for (path, _), res in zip(files, resources, strict=True)
                       if res.archive)
        log.info("%s: extracting %s", name, archive.name)
        _extract(name, archive, tmp)
        folder = tmp / source.archive_folder if source.archive_folder else tmp
        if not folder.is_dir():
            raise DataError(f"{name}: {archive} holds no {source.archive_folder}/ folder at its "
                            f"top level (not the official archive?); nothing was extracted")
        for (path, _), res in zip(files, resources, strict=True):
            if not res.archive:
                shutil.copyfile(path, folder / res.filename)
        missing = [rel for rel in source.required if not (folder / rel).exists()]
        if missing:
            raise DataError(f"{name}: {archive} lacks {', '.join(missing)} in "
                            f"{source.folder}/ (incomplete or not the official archive); "
                            f"nothing was extracted")
        os.replace(folder, root / source.folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for (path, downloaded), res in zip(files, resources, strict=True):
        if downloaded and not res.archive:
            path.unlink(missing_ok=True)


def _extract(name: str, archive: Path, into: Path) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{name}: {archive} is not a readable tar archive ({exc}); nothing "
                        f"was extracted") from None
