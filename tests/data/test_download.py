"""``oodml data download``: the public archives fetched from an HTTP server on 127.0.0.1 (the catalogue's
names under ``OODML_DATA_MIRROR``), verified, unpacked into the layout the loaders read, resumed after an
interruption, and refused on a checksum mismatch."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from dataclasses import replace

import pytest
from PIL import Image

from study.cli import main
from tasks.data import build_dataset
from tasks.data import download as dl
from tests.fileserver import serve


def _jpeg(tone: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (tone, 0, 0)).save(buffer, "JPEG")
    return buffer.getvalue()


def _cub_archive() -> bytes:
    """CUB_200_2011.tgz in miniature: two classes, as the published archive lays them out."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for c, folder in enumerate(["001.Black_footed_Albatross", "200.Common_Yellowthroat"]):
            for k in range(2):
                data = _jpeg(100 * c + k)
                info = tarfile.TarInfo(f"CUB_200_2011/images/{folder}/img_{k}.jpg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("attributes.txt")
        tar.addfile(info, io.BytesIO())
    return buffer.getvalue()


def _sop_archive() -> bytes:
    """Stanford_Online_Products.zip in miniature: info files at its root, images in category folders."""
    buffer = io.BytesIO()
    header = "image_id class_id super_class_id path\n"
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Stanford_Online_Products/Ebay_train.txt", header + "1 1 1 bicycle_final/1_0.JPG\n")
        archive.writestr("Stanford_Online_Products/Ebay_test.txt", header + "2 2 2 chair_final/2_0.JPG\n")
        archive.writestr("Stanford_Online_Products/bicycle_final/1_0.JPG", _jpeg(10))
        archive.writestr("Stanford_Online_Products/chair_final/2_0.JPG", _jpeg(200))
    return buffer.getvalue()


@pytest.fixture
def catalogue(monkeypatch):
    """The catalogue with the checksums of the miniature archives (names and layout unchanged)."""
    archives = {"cub200": _cub_archive(), "sop": _sop_archive()}
    for name, data in archives.items():
        entry = replace(dl.CATALOGUE[name], md5=hashlib.md5(data).hexdigest())
        monkeypatch.setitem(dl.CATALOGUE, name, entry)
    return {dl.CATALOGUE[name].archive: data for name, data in archives.items()}


def test_download_verifies_and_unpacks_into_the_layout_the_loaders_read(
    catalogue, tmp_path, monkeypatch, capsys
):
    with serve(catalogue) as server:
        monkeypatch.setenv(dl.MIRROR_SETTING, server.url)
        assert main(["data", "download", "cub200", "--root", str(tmp_path)]) == 0
        assert main(["data", "download", "sop", "--root", str(tmp_path)]) == 0
        assert main(["data", "download", "cub200", "--root", str(tmp_path)]) == 0  # present: nothing to do
        assert len(server.requests) == 2
    out = capsys.readouterr().out
    assert f"cub200: ready at {tmp_path / 'CUB_200_2011'}" in out and "cub200: already at" in out
    cub = build_dataset("cub200", tmp_path / "CUB_200_2011", num_train_classes=1)
    assert len(cub.image_ids) == 4 and cub.default_test == ("200.Common_Yellowthroat",)
    sop = build_dataset("sop", tmp_path / "Stanford_Online_Products")
    assert sop.default_train == ("1",) and sop.default_test == ("2",)
    assert not list(tmp_path.glob("*.tgz")) and not list(tmp_path.glob("*.zip"))  # archives removed


def test_an_interrupted_download_resumes_with_a_range_request(catalogue, tmp_path, monkeypatch, capsys):
    data = catalogue["CUB_200_2011.tgz"]
    cut = len(data) // 3
    with serve(catalogue, cut={"CUB_200_2011.tgz": cut}) as server:
        monkeypatch.setenv(dl.MIRROR_SETTING, server.url)
        assert main(["data", "download", "cub200", "--root", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert "interrupted" in err and f"{cut} bytes are kept" in err and "run the command again" in err
        assert (tmp_path / "CUB_200_2011.tgz.part").stat().st_size == cut
        assert main(["data", "download", "cub200", "--root", str(tmp_path), "--keep-archive"]) == 0
        assert [r[2] for r in server.requests] == [None, f"bytes={cut}-"]
    assert (tmp_path / "CUB_200_2011.tgz").read_bytes() == data
    assert (tmp_path / "CUB_200_2011" / "images" / "200.Common_Yellowthroat" / "img_1.jpg").is_file()


def test_a_checksum_mismatch_is_refused(catalogue, tmp_path, monkeypatch, capsys):
    data = catalogue["CUB_200_2011.tgz"]
    with serve({"CUB_200_2011.tgz": data[:-1] + bytes([data[-1] ^ 1])}) as server:
        monkeypatch.setenv(dl.MIRROR_SETTING, server.url)
        assert main(["data", "download", "cub200", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "does not have the published MD5" in err and "removed" in err
    assert list(tmp_path.iterdir()) == []  # nothing unpacked, nothing kept


def test_a_server_that_ignores_ranges_sends_the_whole_file_again(tmp_path):
    data = bytes(range(256)) * 64
    (tmp_path / "x.bin.part").write_bytes(data[:100])
    with serve({"x.bin": data}) as server:
        server.ranges = False
        dl.fetch_resumable(f"{server.url}/x.bin", tmp_path / "x.bin", progress=False)
        assert server.requests == [("GET", "/x.bin", "bytes=100-")]
    assert (tmp_path / "x.bin").read_bytes() == data and not (tmp_path / "x.bin.part").exists()


def test_unknown_dataset_and_unreachable_server(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="no public archive known for 'cars'"):
        dl.download_dataset("cars", tmp_path)
    monkeypatch.setenv(dl.MIRROR_SETTING, "http://127.0.0.1:9")  # discard port: nobody listens
    with pytest.raises(dl.DownloadError, match="interrupted.*run the command again"):
        dl.download_dataset("sop", tmp_path, progress=False)
