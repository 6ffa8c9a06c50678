"""`dcgan.data.download` against a local HTTP server: never the real network, seconds in all."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import logging
import re
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pooch
import pytest

from dcgan.data.download import (
    MANUAL,
    REMOTE,
    RemoteFile,
    dataset_dir,
    download,
    is_manual,
    manual_instructions,
)
from dcgan.errors import DataError

CONTENT = {"a.bin": b"alpha " * 1000, "b.bin": b"bravo " * 500}


def md5(data: bytes) -> str:
    """The pooch-style md5 checksum of `data`."""
    return "md5:" + hashlib.md5(data).hexdigest()


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the fixture directory, records every request path, and keeps the test log quiet."""

    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Server:
    """A running local server: its base URL, the directory it serves, the paths requested."""

    base: str
    served: Path
    paths: list[str] = field(default_factory=list)

    def entry(self, name: str, *urls: str, known_hash: str | None = None) -> RemoteFile:
        """A RemoteFile for served file `name` (at `base + name` unless `urls` are given)."""
        return RemoteFile(name, urls or (self.base + name,), known_hash or md5(CONTENT[name]))


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A ThreadingHTTPServer on 127.0.0.1 (ephemeral port) serving CONTENT, shut down after."""
    # A proxy from the environment would swallow requests meant for localhost.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()
    for name, data in CONTENT.items():
        (served / name).write_bytes(data)
    handler = functools.partial(_CountingHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    paths: list[str] = []
    httpd.paths = paths  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}/", served, paths)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def closed_url() -> str:
    """A URL on a local port nothing listens on, so connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_downloads_into_dataset_dir_and_verifies(server: Server, tmp_path: Path) -> None:
    root = tmp_path / "data"
    paths = download("toy", root, remote={"toy": (server.entry("a.bin"),)})
    dest = dataset_dir(root, "toy") / "a.bin"
    assert paths == [dest.resolve()]
    assert dest.read_bytes() == CONTENT["a.bin"]
    assert server.paths == ["/a.bin"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.bin"]  # no temp files left


def test_second_call_does_not_hit_server(server: Server, tmp_path: Path) -> None:
    remote = {"toy": (server.entry("a.bin"),)}
    first = download("toy", tmp_path, remote=remote)
    second = download("toy", tmp_path, remote=remote)
    assert first == second
    assert server.paths == ["/a.bin"]


def test_falls_back_to_next_mirror(server: Server, tmp_path: Path) -> None:
    entry = server.entry("a.bin", server.base + "missing/a.bin", server.base + "a.bin")
    (path,) = download("toy", tmp_path, remote={"toy": (entry,)})
    assert path.read_bytes() == CONTENT["a.bin"]
    assert server.paths == ["/missing/a.bin", "/a.bin"]


def test_all_mirrors_refused_names_url_and_destination(closed_url: str, tmp_path: Path) -> None:
    entry = RemoteFile("a.bin", (closed_url + "a.bin",), md5(CONTENT["a.bin"]))
    with pytest.raises(DataError) as info:
        download("toy", tmp_path, remote={"toy": (entry,)})
    message = str(info.value)
    dest = (dataset_dir(tmp_path, "toy") / "a.bin").resolve()
    assert "\n" not in message
    assert closed_url + "a.bin" in message
    assert "refused" in message.lower()
    assert message.endswith(f"put it at {dest}")
    assert not dest.exists()


def test_http_errors_on_every_mirror_are_reported(server: Server, tmp_path: Path) -> None:
    entry = server.entry("a.bin", server.base + "x/a.bin", server.base + "y/a.bin")
    with pytest.raises(DataError, match=r"x/a\.bin \(HTTP 404.*y/a\.bin \(HTTP 404") as info:
        download("toy", tmp_path, remote={"toy": (entry,)})
    assert "\n" not in str(info.value)


def test_checksum_mismatch_keeps_nothing(server: Server, tmp_path: Path) -> None:
    expected = md5(b"the official bytes")
    entry = server.entry("a.bin", known_hash=expected)
    with pytest.raises(DataError) as info:
        download("toy", tmp_path, remote={"toy": (entry,)})
    message = str(info.value)
    assert "\n" not in message
    assert expected in message
    assert md5(CONTENT["a.bin"]) in message
    assert "a.bin" in message and "discarded" in message
    directory = dataset_dir(tmp_path, "toy")
    assert not (directory / "a.bin").exists()
    assert list(directory.iterdir()) == []  # pooch's temporary file is gone too


def test_existing_wrong_file_is_reported_and_left_alone(server: Server, tmp_path: Path) -> None:
    dest = dataset_dir(tmp_path, "toy") / "a.bin"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"my own file")
    with pytest.raises(DataError) as info:
        download("toy", tmp_path, remote={"toy": (server.entry("a.bin"),)})
    message = str(info.value)
    assert "\n" not in message
    assert str(dest.resolve()) in message
    assert "does not match the official checksum" in message
    assert "delete it" in message
    assert dest.read_bytes() == b"my own file"
    assert server.paths == []


def test_files_subset_and_optional_files(server: Server, tmp_path: Path) -> None:
    optional = RemoteFile("b.bin", (server.base + "b.bin",), md5(CONTENT["b.bin"]), True)
    remote = {"toy": (server.entry("a.bin"), optional)}
    assert [p.name for p in download("toy", tmp_path / "1", remote=remote)] == ["a.bin"]
    assert [p.name for p in download("toy", tmp_path / "2", files=["b.bin"], remote=remote)] == [
        "b.bin"
    ]
    assert not (dataset_dir(tmp_path / "2", "toy") / "a.bin").exists()
    with pytest.raises(DataError, match=r"no file\(s\) c\.bin; its files are a\.bin, b\.bin"):
        download("toy", tmp_path, files=["c.bin"], remote=remote)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_names_the_file_on_a_terminal_only(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bar is progress.bar's: on a terminal it names the file; piped, nothing is written."""
    for stream, root in ((_Terminal(), tmp_path / "tty"), (io.StringIO(), tmp_path / "pipe")):
        monkeypatch.setattr(sys, "stderr", stream)
        download("toy", root, progress=True, remote={"toy": (server.entry("a.bin"),)})
        shown = stream.getvalue()
        assert ("a.bin" in shown) == isinstance(stream, _Terminal), shown
    assert pooch.get_logger().level == logging.WARNING


def test_unknown_and_manual_names() -> None:
    with pytest.raises(DataError) as info:
        download("imagenet", "/nowhere")
    message = str(info.value)
    assert "\n" not in message
    for name in [*REMOTE, "celeba", "lsun"]:
        assert name in message
    assert "dcgan download --dataset celeba" in message
    for name in MANUAL:
        assert is_manual(name)
        with pytest.raises(DataError, match=f"dcgan download --dataset {name}"):
            download(name, "/nowhere")
    assert not any(is_manual(name) for name in REMOTE)


def test_manual_instructions_name_root_and_layout(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    celeba = manual_instructions("celeba", root)
    assert f"{root}/celeba/img_align_celeba.zip" in celeba
    assert f"{root}/celeba/img_align_celeba/" in celeba
    assert "202,599" in celeba and "178x218" in celeba
    assert "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html" in celeba
    lsun = manual_instructions("lsun", root)
    assert f"{root}/lsun/bedroom_train_lmdb/data.mdb" in lsun
    assert "https://github.com/fyu/lsun" in lsun and "-c bedroom" in lsun
    assert "<category>_<split>_lmdb" in lsun
    with pytest.raises(DataError):
        manual_instructions("mnist", root)


def test_remote_registry_is_well_formed() -> None:
    hashes = []
    for name, entries in REMOTE.items():
        assert entries, name
        for entry in entries:
            assert re.fullmatch(r"md5:[0-9a-f]{32}", entry.known_hash), entry
            assert entry.urls, entry
            for url in entry.urls:
                assert re.match(r"https?://", url) and url.endswith("/" + entry.name), url
            hashes.append(entry.known_hash)
    assert len(hashes) == len(set(hashes))  # no checksum pasted twice
    idx = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert [e.name for e in REMOTE["mnist"]] == idx
    assert [e.name for e in REMOTE["fashion-mnist"]] == idx
    assert REMOTE["mnist"][0].urls[0].startswith("https://ossci-datasets.s3.amazonaws.com/mnist/")
    assert [(e.name, e.optional) for e in REMOTE["svhn"]] == [
        ("train_32x32.mat", False),
        ("test_32x32.mat", False),
        ("extra_32x32.mat", True),
    ]
    assert [e.name for e in REMOTE["cifar10"]] == ["cifar-10-python.tar.gz"]
    assert [e.name for e in REMOTE["cifar100"]] == ["cifar-100-python.tar.gz"]
