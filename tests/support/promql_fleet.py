"""A loopback stand-in for a Prometheus server that answers for a very large fleet.

Every ``/api/v1/query`` is answered with an instant vector of ``nodes`` series carrying the labels
a dcgm-exporter target has behind the Prometheus Operator (``instance``, ``job``, ``gpu``,
``UUID``, ``device``, ``modelName``, ``Hostname``, ``DCGM_FI_DRIVER_VERSION``, ``namespace``,
``pod``, ``container``, ``service``, ``endpoint``), gzip-compressed when the client asks for it, as
Prometheus does. ``up`` answers 1 for every node but every 50th (0); any other query answers a
value derived from the node's index, so a join that mixes up instances shows. The bodies are built
once per server, so the server itself costs next to nothing per request.

Used by ``benchmarks/promql_100k_poll.py`` and the fleet-scale tests; runnable on its own
(``python -m tests.support.promql_fleet --nodes 100000`` prints its port, then serves).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[2]
DOWN_EVERY = 50


def node_name(index: int) -> str:
    """The ``instance`` label of node ``index`` (``10.<a>.<b>.<c>:9400``)."""
    return f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}:9400"


def value_for(query: str, index: int) -> str:
    """The sample value node ``index`` gets for ``query`` (a JSON string, as Prometheus sends)."""
    if query.startswith("up"):
        return "0" if index % DOWN_EVERY == DOWN_EVERY - 1 else "1"
    return f"{index % 97 + 0.5}"


def _series(index: int, value: str) -> str:
    host = f"gpu-node-{index:06d}"
    labels = {
        "__name__": "DCGM_FI_DEV_GPU_UTIL",
        "instance": node_name(index),
        "job": "nvidia-dcgm-exporter",
        "gpu": "0",
        "UUID": f"GPU-{index:08x}-4a1c-9f2e-6b7d-{index * 7919 % 16**12:012x}",
        "device": "nvidia0",
        "modelName": "NVIDIA H100 80GB HBM3",
        "Hostname": host,
        "DCGM_FI_DRIVER_VERSION": "590.48.01",
        "namespace": "gpu-operator",
        "pod": f"nvidia-dcgm-exporter-{index:06d}",
        "container": "nvidia-dcgm-exporter",
        "service": "nvidia-dcgm-exporter",
        "endpoint": "gpu-metrics",
    }
    return json.dumps({"metric": labels, "value": [1764720000.123, value]}, separators=(",", ":"))


def vector_body(query: str, nodes: int) -> bytes:
    """The whole ``/api/v1/query`` answer for ``query`` over ``nodes`` nodes."""
    result = ",".join(_series(i, value_for(query, i)) for i in range(nodes))
    return (
        '{"status":"success","data":{"resultType":"vector","result":[' + result + "]}}"
    ).encode()


class FleetServer:
    """The bodies for one fleet size, built once: plain and gzip, for ``up`` and the rest."""

    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self.bodies: dict[bool, tuple[bytes, bytes]] = {}
        for is_up in (True, False):
            plain = vector_body("up" if is_up else "other", nodes)
            self.bodies[is_up] = (plain, gzip.compress(plain, compresslevel=1))
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer HTTP/1.1 keep-alive requests until the client goes away."""
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                target = lines[0].split(" ")[1] if " " in lines[0] else "/"
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                query = parse_qs(urlsplit(target).query).get("query", [""])[0]
                self.requests += 1
                plain, packed = self.bodies[query.startswith("up")]
                wants_gzip = "gzip" in headers.get("accept-encoding", "")
                body = packed if wants_gzip else plain
                extra = "content-encoding: gzip\r\n" if wants_gzip else ""
                writer.write(
                    (
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        f"{extra}content-length: {len(body)}\r\n\r\n"
                    ).encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


async def _serve(nodes: int) -> None:
    fleet = FleetServer(nodes)
    server = await asyncio.start_server(fleet.handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def fleet_server(nodes: int, timeout: float = 300.0) -> Iterator[str]:
    """A server for ``nodes`` nodes in a child process; yields its URL, stops it on the way out."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.promql_fleet", "--nodes", str(nodes)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # the port, once every body is built
        if not line.strip().isdigit():
            raise RuntimeError(f"fleet server did not start (exit {child.poll()})")
        yield f"http://127.0.0.1:{int(line)}"
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


def main() -> None:
    """Serve a fleet of ``--nodes`` nodes on a free loopback port, printing the port first."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(_serve(args.nodes))


if __name__ == "__main__":
    main()
