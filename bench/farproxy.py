#!/usr/bin/env python3
"""A TCP proxy that makes a loopback S3 server look distant, for bench/run.sh's seq_cold_far.

    farproxy.py --upstream HOST:PORT [--rtt-ms 20] [--rate-mbps 25] [--port 0]

Every byte is delayed by half the round trip in each direction (a delay line: bytes keep
flowing while earlier ones are on their way), and each connection carries at most --rate-mbps
megabytes per second each way, as a single TCP stream to a remote S3 endpoint does. A client
that keeps many requests in flight gets many times the rate; one that waits for each answer gets
one round trip per request. Prints "farproxy listening on 127.0.0.1:PORT" once it accepts
connections. Debian's python3 only; no third-party modules.

It is a user-space copy loop: on the bench machine it carries about 300 MB/s in all before its
own CPU limits it, so the rates it is run with stay well below that.
"""
import argparse
import asyncio
import time

CHUNK = 256 << 10
WINDOW = 16 << 20  # bytes on their way per direction before the reading side waits


async def pipe(reader, writer, half_rtt, rate):
    """Copies reader to writer through a delay line with a rate limit."""
    queue = asyncio.Queue()
    room = asyncio.Condition()
    in_flight = 0

    async def take():
        nonlocal in_flight
        link_free = time.monotonic()
        while True:
            data = await reader.read(CHUNK)
            now = time.monotonic()
            if not data:
                await queue.put((now + half_rtt, b""))
                return
            # The link sends it at `rate` after what it is still sending, then it travels.
            link_free = max(link_free, now) + len(data) / rate
            async with room:
                await room.wait_for(lambda: in_flight < WINDOW)
                in_flight += len(data)
            await queue.put((link_free + half_rtt, data))

    async def give():
        nonlocal in_flight
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
            async with room:
                in_flight -= len(data)
                room.notify_all()

    try:
        await asyncio.gather(take(), give())
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the real server")
    ap.add_argument("--rtt-ms", type=float, default=20.0)
    ap.add_argument("--rate-mbps", type=float, default=25.0, help="MB/s per connection and direction")
    ap.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    args = ap.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    half_rtt, rate = args.rtt_ms / 2000.0, args.rate_mbps * 1e6

    async def handle(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection(host, int(port))
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, server_w, half_rtt, rate),
                             pipe(server_r, client_w, half_rtt, rate))

    server = await asyncio.start_server(handle, "127.0.0.1", args.port)
    print(f"farproxy listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
