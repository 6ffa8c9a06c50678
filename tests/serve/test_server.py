"""`dcgan serve`: the images it answers are the commands' images, bit for bit; the command line
it shows writes them; hostile requests are 4xx in bounded time and memory; it keeps serving."""

from __future__ import annotations

import http.client
import io
import json
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_flags
from dcgan import latent
from dcgan.cli import main
from dcgan.images import read_png
from dcgan.run.sources import load_sampler
from dcgan.sampling import generate
from dcgan.serve.playground import Playground
from dcgan.serve.server import make_server


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve")
    assert main(["train", *tiny_flags(root)]) == 0
    return next((root / "runs").glob("0*"))


@pytest.fixture(scope="module")
def server(run: Path) -> Iterator[tuple[str, int]]:
    play = Playground(load_sampler(run), str(run), torch.device("cpu"))
    httpd = make_server(play, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[:2]
    httpd.shutdown()
    httpd.server_close()


def get(server: tuple[str, int], path: str, method: str = "GET", body: bytes | None = None):
    """(status, headers, body) of one request."""
    conn = http.client.HTTPConnection(*server, timeout=30)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def png(data: bytes) -> torch.Tensor:
    arr = np.array(Image.open(io.BytesIO(data)))
    return torch.from_numpy(arr[:, :, None] if arr.ndim == 2 else arr).permute(2, 0, 1)


def test_the_page_and_the_models_facts(server) -> None:
    status, headers, body = get(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    script = body.split(b"<script")[1]
    assert b"dcgan serve" in body and b"http" not in script  # no CDN: all of it is here
    status, _, body = get(server, "/api/info")
    info = json.loads(body)
    assert status == 200 and info["nz"] == 16 and info["image_size"] == 16
    assert info["method"] == "slerp" and info["conditional"] is False


def test_images_are_the_generate_commands(server, run: Path, tmp_path: Path) -> None:
    sampler = load_sampler(run)
    for seed, index in ((2**40, 2**31 - 1), (0, 0), (3, 17)):
        status, headers, body = get(server, f"/api/image?seed={seed}&index={index}")
        assert status == 200 and headers["Content-Type"] == "image/png"
        ((_, expected),) = generate(sampler.generator, [index], seed, 1, sampler.z_dist)
        assert torch.equal(png(body), expected[0])
    # the command shown for the last (image 17 of seed 3) writes that very file
    command = headers["X-Dcgan-Command"].split("  #")[0]
    out = tmp_path / "images"
    argv = shlex.split(command)[1:]
    assert main([*argv[:-1], str(out)]) == 0
    assert torch.equal(read_png(out / f"{index:06d}.png"), png(body))


def test_slider_images_are_the_interpolate_and_sweep_commands(server, run: Path) -> None:
    g = load_sampler(run).generator
    strip = latent.interpolate(latent.Latents(g, seed=1), [(3, 5)], 9, "slerp")[0]
    for k in (0, 4, 8):
        status, headers, body = get(server, f"/api/interpolate?seed=1&a=3&b=5&steps=9&k={k}")
        assert status == 200 and torch.equal(png(body), strip[k])
    assert headers["X-Dcgan-Command"].startswith(
        f"dcgan interpolate {run} 3:5 --steps 9 --method slerp --seed 1 --out path.png"
    )
    swept = latent.sweep(g, 2, [7], (-3.0, 3.0), 5)[0]
    for k in range(5):
        status, _, body = get(server, f"/api/sweep?index=2&dim=7&steps=5&k={k}")
        assert status == 200 and torch.equal(png(body), swept[k])


def test_arithmetic_is_the_arithmetic_commands_result(server, run: Path) -> None:
    g = load_sampler(run).generator
    expected = latent.arithmetic(g, [1, 2], [3], [4, 5], variations=0).result
    status, headers, body = get(server, "/api/arithmetic?a=1,2&b=3&c=4,5")
    assert status == 200 and torch.equal(png(body), expected)
    assert "--a 1,2 --b 3 --c 4,5 --variations 0" in headers["X-Dcgan-Command"]


HOSTILE = [
    "/api/image?index=-1",
    "/api/image?index=99999999999999999999999",
    "/api/image?index=1e9",
    "/api/image?index=0&index=1",
    "/api/image?index=0&seed=18446744073709551616",
    "/api/image?index=../../etc/passwd",
    "/api/image?index=0&class=3",
    "/api/image?index=0&path=/etc/passwd",
    "/api/image",
    "/api/interpolate?a=0&b=1&steps=1000000000&k=0",
    "/api/interpolate?a=0&b=1&steps=9&k=9",
    "/api/interpolate?a=0&b=1&steps=1&k=0",
    "/api/interpolate?a=0&b=1&method=../x",
    "/api/sweep?index=0&dim=16&k=0",
    "/api/sweep?index=0&dim=0&k=0&low=nan",
    "/api/sweep?index=0&dim=0&k=0&high=1e308",
    "/api/arithmetic?a=" + ",".join(["1"] * 9) + "&b=1&c=1",
    "/api/arithmetic?a=&b=1&c=1",
    "/api/image?" + "&".join(f"f{i}=1" for i in range(40)),
    "/api/image?index=%ff%fe",
    "/../../etc/passwd",
    "/page.html",
    "/api/" + "x" * 3000,
]


@pytest.mark.parametrize("path", HOSTILE)
def test_hostile_requests_are_4xx_with_a_reason(server, path: str) -> None:
    status, headers, body = get(server, path)
    assert 400 <= status < 500, (path, status)
    if headers.get("Content-Type") == "application/json":
        assert json.loads(body)["error"]


def test_other_methods_and_bodies_are_refused(server) -> None:
    for method in ("POST", "PUT", "DELETE"):
        status, _, _ = get(server, "/api/image?index=0", method, b'{"index": [1e999')
        assert status == 405


def test_a_burst_of_a_thousand_bad_requests_within_memory_then_it_serves(
    server, memory_limit: int
) -> None:
    start = time.monotonic()
    statuses = {get(server, HOSTILE[i % len(HOSTILE)])[0] for i in range(1000)}
    assert all(400 <= s < 500 for s in statuses)
    assert time.monotonic() - start < 120
    assert get(server, "/api/image?index=1")[0] == 200


def test_serve_refuses_a_bad_port_and_a_missing_source(run: Path, capsys) -> None:
    assert main(["serve", str(run), "--port", "70000"]) == 2
    assert main(["serve", str(run / "nothing")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "--port: 70000" in err[0]
