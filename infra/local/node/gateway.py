#!/usr/bin/env python3
"""Forwards TCP from the node's bridge address to the same ports on loopback.

The stack's servers (kube-apiserver, moto, OpenBao) listen on 127.0.0.1 only; Pods on the
node live in network namespaces of their own, on a bridge whose host address is GATEWAY. This
relays GATEWAY:PORT to 127.0.0.1:PORT for each PORT given, byte for byte (TLS passes through).

    gateway.py GATEWAY PORT...
"""

import asyncio
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


def relay(port: int):
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    return handle


async def main(gateway: str, ports: list[int]) -> None:
    servers = [await asyncio.start_server(relay(p), gateway, p) for p in ports]
    print(f"relaying {gateway}:{{{','.join(map(str, ports))}}} to 127.0.0.1", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: gateway.py GATEWAY PORT...")
    asyncio.run(main(sys.argv[1], [int(p) for p in sys.argv[2:]]))
