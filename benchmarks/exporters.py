"""Loopback node_exporters whose values change every few seconds, for the idle-CPU benchmark.

    python benchmarks/exporters.py FIXTURE [--period 5]

Serves ``/t/<i>/metrics`` on 127.0.0.1 (keep-alive HTTP/1.1, asyncio) and prints its port. Each
target answers the real node_exporter body with its own CPU seconds (idle and user), load,
available memory, network bytes and clock, moved on every ``period`` seconds: counters only ever
grow, so the collector's rates and the Fleet table's figures change on every poll.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
import time
from pathlib import Path

_CPU = re.compile(r'^node_cpu_seconds_total\{cpu="(\d+)",mode="(idle|user)"\}')
_GAUGES = ("node_load1 ", "node_memory_MemAvailable_bytes ", "node_time_seconds ")
_NET = re.compile(r'^node_network_(receive|transmit)_bytes_total\{device="eth0"\}')


class Template:
    """The fixture's lines, with the positions of the values that move."""

    def __init__(self, body: str) -> None:
        self.lines = body.rstrip("\n").split("\n")
        self.moving: dict[int, str] = {}
        self.base: dict[int, float] = {}
        for index, line in enumerate(self.lines):
            if line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            match = _CPU.match(line)
            if match:
                self.moving[index] = f"cpu:{match.group(1)}:{match.group(2)}"
            elif _NET.match(line):
                self.moving[index] = "net"
            elif line.startswith(_GAUGES):
                self.moving[index] = name
            else:
                continue
            self.base[index] = float(value)
            self.lines[index] = name


class Target:
    """One node's counters, advanced one period at a time so they never go backwards."""

    def __init__(self, number: int, template: Template, period: float) -> None:
        self.number = number
        self.template = template
        self.period = period
        self.epoch = -1
        self.added: dict[int, float] = dict.fromkeys(template.moving, 0.0)
        self.body = b""

    def busy(self, epoch: int) -> float:
        return 0.3 + 0.25 * math.sin(epoch * 0.7 + self.number)

    def render(self, now: float) -> bytes:
        epoch = int(now // self.period)
        if epoch == self.epoch:
            return self.body
        if self.epoch < 0:
            self.epoch = epoch - 1
        while self.epoch < epoch:  # every period that passed adds its own seconds
            self.epoch += 1
            busy = self.busy(self.epoch)
            for index, kind in self.template.moving.items():
                if kind.endswith(":idle"):
                    self.added[index] += self.period * (1 - busy)
                elif kind.endswith(":user"):
                    self.added[index] += self.period * busy
                elif kind == "net":
                    self.added[index] += self.period * 2e5 * (1 + busy)
        lines = list(self.template.lines)
        busy = self.busy(epoch)
        for index, kind in self.template.moving.items():
            base = self.template.base[index]
            if kind == "node_load1":
                value = 2 * busy
            elif kind == "node_memory_MemAvailable_bytes":
                value = base * (0.4 + 0.5 * busy)
            elif kind == "node_time_seconds":
                value = now
            else:
                value = base + self.added[index]
            lines[index] = f"{lines[index]} {value!r}"
        self.body = ("\n".join(lines) + "\n").encode()
        return self.body


async def serve(port_out: list[int], template: Template, period: float) -> None:
    targets: dict[int, Target] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                path = request.split(b" ", 2)[1].decode()
                parts = path.split("/")
                number = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
                target = targets.setdefault(number, Target(number, template, period))
                body = target.render(time.time())
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n"
                    b"content-length: %d\r\n\r\n" % len(body) + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    port_out.append(server.sockets[0].getsockname()[1])
    print(port_out[0], flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fixture", type=Path)
    parser.add_argument("--period", type=float, default=5.0)
    args = parser.parse_args()
    template = Template(args.fixture.read_text(encoding="utf-8"))
    asyncio.run(serve([], template, args.period))
    return 0


if __name__ == "__main__":
    sys.exit(main())
