"""``tdsa data download`` and ``build_dataset(download=True)``: fixture archives in the real
layouts, served by a loopback HTTP server this file starts (127.0.0.1 only, Range support)."""

from __future__ import annotations

import hashlib
import http.server
import io
import shutil
import tarfile
import threading
from pathlib import Path

import pytest

from tdsa.cli import main
from tdsa.commands.data import OFFICIAL_SIZES
from tdsa.data import build_dataset
from tdsa.data import download as dl
from tdsa.errors import ConfigError, DataError


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-`` unless ``server.ignore_range``;
    the first GET of a name in ``server.drop_once`` sends half the body and hangs up."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        srv = self.server
        name = self.path.lstrip("/")
        srv.requests.append((name, self.headers.get("Range")))
        if name not in srv.files:
            self.send_error(404)
            return
        body = srv.files[name]
        start = 0
        ranged = self.headers.get("Range")
        if ranged and not srv.ignore_range:
            start = int(ranged.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if name in srv.drop_once:
            srv.drop_once.discard(name)
            self.wfile.write(body[start:start + (len(body) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.drop_once, srv.ignore_range = {}, [], set(), False
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/"
    yield srv
    srv.shutdown()
    srv.server_close()


def _tgz(folder: Path, members: list[str]) -> bytes:
    """A gzipped tar of ``members`` (paths relative to ``folder``), as the official ones are."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for member in members:
            tar.add(folder / member, arcname=member)
    return buf.getvalue()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def cub_archive(tmp_path_factory, make_cub) -> bytes:
    """CUB_200_2011.tgz in the official layout: ``CUB_200_2011/`` plus ``attributes.txt``."""
    src = tmp_path_factory.mktemp("cub_src")
    make_cub(src)
    (src / "attributes.txt").write_text("1 has_bill_shape::curved\n")
    return _tgz(src, ["attributes.txt", "CUB_200_2011"])


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_official_sources_are_torchvision_s_urls_and_checksums():
    from torchvision.datasets import FGVCAircraft, Flowers102

    flowers = dl.SOURCES["flowers102"].resources
    assert [(r.url, r.md5) for r in flowers] == [
        (Flowers102._download_url_prefix + f, md5) for f, md5 in Flowers102._file_dict.values()]
    assert dl.SOURCES["aircraft"].resources[0].url == FGVCAircraft._URL
    cub = dl.SOURCES["cub"].resources[0]
    assert cub.filename == "CUB_200_2011.tgz" and cub.url.startswith("https://data.caltech.edu/")
    assert all(len(r.md5) == 32 for s in ("cub", "aircraft") for r in dl.SOURCES[s].resources)


def test_download_cub_then_check_accepts_the_tree(server, cub_archive, tmp_path, capsys,
                                                  monkeypatch):
    server.files["CUB_200_2011.tgz"] = cub_archive
    root = tmp_path / "X"
    code = main(["data", "download", "cub", "--root", str(root), "--url",
                 server.url + "CUB_200_2011.tgz", "--md5", _md5(cub_archive)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"cub downloaded, verified and extracted into {root / 'CUB_200_2011'}" in out
    assert _leftovers(root) == ["CUB_200_2011"]  # archive, .part and temporary folder gone
    # the fixture's sizes stand for the official ones
    monkeypatch.setitem(OFFICIAL_SIZES, "cub", {"train": 6, "test": 3})
    assert main(["data", "check", "--dataset", "cub", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "train: 6 images" in out and "test: 3 images" in out
    assert "all images readable" in out and "SHORT" not in out


def test_wrong_checksum_is_one_line_exit_1_and_leaves_no_tree(server, cub_archive, tmp_path,
                                                              capsys):
    server.files["CUB_200_2011.tgz"] = cub_archive
    root = tmp_path / "X"
    code = main(["data", "download", "cub", "--root", str(root), "--url",
                 server.url + "CUB_200_2011.tgz", "--md5", "0" * 32])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith("tdsa data: error: cub: checksum mismatch for ")
    assert f"md5 {_md5(cub_archive)}, expected {'0' * 32}" in err
    assert _leftovers(root) == []


def test_truncated_download_fails_the_official_checksum_and_leaves_nothing(
        server, cub_archive, tmp_path, capsys):
    server.files["CUB_200_2011.tgz"] = cub_archive[: len(cub_archive) // 2]
    root = tmp_path / "X"
    code = main(["data", "download", "cub", "--root", str(root), "--url",
                 server.url + "CUB_200_2011.tgz", "--md5", _md5(cub_archive)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "checksum mismatch" in err
    assert _leftovers(root) == []


def test_broken_archive_with_matching_checksum_extracts_nothing(server, cub_archive, tmp_path,
                                                               capsys):
    broken = cub_archive[: len(cub_archive) * 2 // 3]
    server.files["CUB_200_2011.tgz"] = broken
    root = tmp_path / "X"
    code = main(["data", "download", "cub", "--root", str(root), "--url",
                 server.url + "CUB_200_2011.tgz", "--md5", _md5(broken)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "is not a readable tar archive" in err and "nothing was extracted" in err
    assert not (root / "CUB_200_2011").exists()
    assert not any(name.endswith(".extracting") for name in _leftovers(root))


def test_interrupted_download_is_resumed_by_the_next_call(server, cub_archive, tmp_path):
    server.files["CUB_200_2011.tgz"] = cub_archive
    server.drop_once.add("CUB_200_2011.tgz")
    root = tmp_path / "X"
    url = server.url + "CUB_200_2011.tgz"
    with pytest.raises(DataError, match=r"interrupted .*run the same command again to resume"):
        dl.download("cub", root, url=url, md5=_md5(cub_archive), attempts=1, timeout=10)
    part = root / "CUB_200_2011.tgz.part"
    assert part.stat().st_size == len(cub_archive) // 2
    assert not (root / "CUB_200_2011").exists()
    folder = dl.download("cub", root, url=url, md5=_md5(cub_archive), attempts=1, timeout=10)
    assert server.requests == [("CUB_200_2011.tgz", None),
                               ("CUB_200_2011.tgz", f"bytes={len(cub_archive) // 2}-")]
    assert folder == root / "CUB_200_2011" and (folder / "images.txt").is_file()
    assert len(build_dataset("cub", root, "train")) == 6


def test_one_call_resumes_within_its_attempts(server, cub_archive, tmp_path, capsys):
    server.files["CUB_200_2011.tgz"] = cub_archive
    server.drop_once.add("CUB_200_2011.tgz")
    root = tmp_path / "X"
    assert main(["data", "download", "cub", "--root", str(root), "--url",
                 server.url + "CUB_200_2011.tgz", "--md5", _md5(cub_archive)]) == 0
    out = capsys.readouterr().out
    assert "interrupted" in out and "resuming" in out
    assert [r for _, r in server.requests] == [None, f"bytes={len(cub_archive) // 2}-"]
    assert (root / "CUB_200_2011" / "images.txt").is_file()


def test_server_without_range_support_restarts_and_verifies(server, cub_archive, tmp_path):
    server.files["CUB_200_2011.tgz"] = cub_archive
    server.drop_once.add("CUB_200_2011.tgz")
    server.ignore_range = True
    root = tmp_path / "X"
    dl.download("cub", root, url=server.url + "CUB_200_2011.tgz", md5=_md5(cub_archive),
                timeout=10)
    assert len(server.requests) == 2 and (root / "CUB_200_2011" / "images.txt").is_file()


def test_local_path_and_file_url_are_read_in_place(cub_archive, tmp_path):
    archive = tmp_path / "mirror" / "CUB_200_2011.tgz"
    archive.parent.mkdir()
    archive.write_bytes(cub_archive)
    for root, url in ((tmp_path / "A", str(archive)), (tmp_path / "B", archive.as_uri())):
        dl.download("cub", root, url=url, md5=_md5(cub_archive))
        assert _leftovers(root) == ["CUB_200_2011"]
    assert archive.read_bytes() == cub_archive  # the user's file is left alone


def test_existing_tree_is_not_replaced_and_ensure_downloaded_is_a_no_op(server, cub_archive,
                                                                         tmp_path, monkeypatch):
    server.files["CUB_200_2011.tgz"] = cub_archive
    official = dl.Resource(server.url + "CUB_200_2011.tgz", _md5(cub_archive))
    monkeypatch.setitem(dl.SOURCES, "cub", dl.Source((official,), *list(
        dl.SOURCES["cub"].__dict__.values())[1:]))
    root = tmp_path / "X"
    dataset = build_dataset("cub", root, "test", download=True)
    assert len(dataset) == 3 and len(server.requests) == 1
    assert len(build_dataset("cub", root, "train", download=True)) == 6
    assert len(server.requests) == 1  # already there: nothing fetched
    with pytest.raises(DataError, match=r"already exists.*remove it to download again"):
        dl.download("cub", root)


def test_flowers_from_a_folder_url_assembles_the_three_files(server, tmp_path, monkeypatch,
                                                             make_flowers):
    src = tmp_path / "src"
    make_flowers(src)
    files = {"102flowers.tgz": _tgz(src, ["jpg"]),
             "imagelabels.mat": (src / "imagelabels.mat").read_bytes(),
             "setid.mat": (src / "setid.mat").read_bytes()}
    server.files.update(files)
    fixture = tuple(dl.Resource(r.url, _md5(files[r.filename]), r.archive)
                    for r in dl.SOURCES["flowers102"].resources)
    monkeypatch.setitem(dl.SOURCES, "flowers102", dl.Source(fixture, *list(
        dl.SOURCES["flowers102"].__dict__.values())[1:]))
    root = tmp_path / "X"
    assert dl.download("flowers102", root, url=server.url) == root / "flowers-102"
    assert sorted(p.name for p in (root / "flowers-102").iterdir()) == [
        "imagelabels.mat", "jpg", "setid.mat"]
    assert _leftovers(root) == ["flowers-102"]
    assert len(build_dataset("flowers102", root, "test")) == 4


def test_archive_without_the_expected_folder_is_refused(server, tmp_path, capsys):
    src = tmp_path / "src"
    (src / "other").mkdir(parents=True)
    (src / "other" / "x.txt").write_text("x")
    data = _tgz(src, ["other"])
    server.files["a.tgz"] = data
    root = tmp_path / "X"
    assert main(["data", "download", "aircraft", "--root", str(root), "--url",
                 server.url + "a.tgz", "--md5", _md5(data)]) == 1
    assert "holds no fgvc-aircraft-2013b/ folder" in capsys.readouterr().err
    assert not (root / "fgvc-aircraft-2013b").exists()


@pytest.mark.parametrize("name", ["cars", "nabirds"])
def test_datasets_without_a_direct_link_say_where_to_get_them(name, tmp_path, capsys):
    assert main(["data", "download", name, "--root", str(tmp_path / "X")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no official direct link" in err
    assert ("https://dl.allaboutbirds.org/nabirds" if name == "nabirds" else "cars_train/") in err
    assert not (tmp_path / "X").exists()


def test_nabirds_archive_from_url_without_checksum(nabirds_root, tmp_path, capsys):
    src, _ = nabirds_root  # tmp_path/nabirds
    archive = tmp_path / "nabirds.tar.gz"
    archive.write_bytes(_tgz(src, ["nabirds"]))
    root = tmp_path / "X"
    assert main(["data", "download", "nabirds", "--root", str(root), "--url", str(archive)]) == 0
    assert "has no published checksum: checked by format only" in capsys.readouterr().out
    assert len(build_dataset("nabirds", root, "train")) == 3


def test_bad_md5_argument_and_nothing_to_download(tmp_path):
    with pytest.raises(ConfigError, match="not an MD5 checksum"):
        dl.download("cub", tmp_path, url="x.tgz", md5="xyz")
    with pytest.raises(ConfigError, match="synthetic: nothing to download"):
        build_dataset("synthetic", tmp_path, "train", download=True)


def test_missing_local_file_and_http_error_are_one_line(server, tmp_path):
    with pytest.raises(DataError, match="is not a file"):
        dl.download("cub", tmp_path / "X", url=str(tmp_path / "missing.tgz"))
    with pytest.raises(DataError, match="HTTP 404"):
        dl.download("cub", tmp_path / "X", url=server.url + "missing.tgz", timeout=10)
    assert not (tmp_path / "X" / "CUB_200_2011").exists()
    shutil.rmtree(tmp_path / "X", ignore_errors=True)


def test_download_true_is_a_no_op_for_a_tree_made_by_hand(tmp_path, make_cars, nabirds_root):
    make_cars(tmp_path / "cars")
    assert len(build_dataset("cars", tmp_path / "cars", "train", download=True)) == 3
    root, _ = nabirds_root
    assert len(build_dataset("nabirds", root, "test", download=True)) == 3
    with pytest.raises(ConfigError, match="cars: no official direct link"):
        build_dataset("cars", tmp_path / "empty", "train", download=True)


def test_a_whole_part_file_is_verified_without_downloading_again(server, cub_archive, tmp_path):
    server.files["CUB_200_2011.tgz"] = cub_archive
    root = tmp_path / "X"
    root.mkdir()
    (root / "CUB_200_2011.tgz.part").write_bytes(cub_archive)  # stopped before the rename
    dl.download("cub", root, url=server.url + "CUB_200_2011.tgz", md5=_md5(cub_archive),
                timeout=10)
    assert server.requests == [("CUB_200_2011.tgz", f"bytes={len(cub_archive)}-")]  # 416
    assert _leftovers(root) == ["CUB_200_2011"]
