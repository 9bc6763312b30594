#!/usr/bin/env python3
"""Writes an access log in usher's JSON format for `usher simulate --replay`.

usage: replay_log.py OUT MEGABYTES [SEED]

Poisson arrivals at 2000/s, 10 000 clients, four backends of which one is three times slower,
exponential service times (20 ms mean). Lines are written as each request ends, so arrivals come
out of order the way they do in a real log.
"""
import heapq
import random
import sys
import time

BACKENDS = ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.4:8080"]
SLOWDOWN = [1.0, 1.0, 1.0, 3.0]
LINE = ('{{"time":"{time}.{ms:03d}Z","client":"10.{a}.{b}.{c}","method":"GET","host":"shop.example",'
        '"path":"/items/{item}","status":200,"bytes_sent":5120,"bytes_received":310,'
        '"duration_ms":{duration:.3f},"upstream_ms":{duration:.3f},"listener":"web","route":"items",'
        '"pool":"app","backend":"{backend}","retries":0,"queue_ms":0,'
        '"request_id":"{rid:032x}","user_agent":"Mozilla/5.0 (X11; Linux x86_64) replay/1.0"}}\n')


def main():
    out, megabytes = sys.argv[1], float(sys.argv[2])
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    limit = int(megabytes * 1e6)
    clock = 1764547200.0  # 2025-12-01T00:00:00Z
    ending = []  # (end, line fields) of requests in flight
    written = 0
    with open(out, "w") as f:
        while written < limit:
            clock += rng.expovariate(2000)
            server = rng.randrange(len(BACKENDS))
            duration = rng.expovariate(50) * SLOWDOWN[server]
            client = rng.randrange(10000)
            heapq.heappush(ending, (clock + duration, duration, server, client))
            while ending and ending[0][0] <= clock:
                end, duration, server, client = heapq.heappop(ending)
                second = int(end)
                line = LINE.format(time=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)),
                                   ms=int((end - second) * 1000), a=client // 65536 % 256,
                                   b=client // 256 % 256, c=client % 256, item=client % 977,
                                   duration=duration * 1000, backend=BACKENDS[server],
                                   rid=rng.getrandbits(128))
                f.write(line)
                written += len(line)


if __name__ == "__main__":
    main()
