"""The request guard of ``skbandit serve`` against hostile bodies (issue 22).

``python -m bench.bench_guard``: the JSON-depth check on bodies of escaped quotes (the old
quadratic regex and the linear check), ``/ping`` latency on a live guard while such a body
is being checked, and the memory a 3,000,000-row parquet body costs the guard.
"""

from __future__ import annotations

import io
import re
import resource
import threading
import time

import numpy as np
import pandas as pd

from serve.app import PARQUET, Guard, json_depth

_OLD = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def old_json_depth(body: bytes) -> int:
    bare = np.frombuffer(_OLD.sub(b'""', body), dtype=np.uint8)
    opens = (bare == ord("[")) | (bare == ord("{"))
    closes = (bare == ord("]")) | (bare == ord("}"))
    return int(np.cumsum(opens.astype(np.int64) - closes).max()) if opens.any() else 0


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def ping_while_posting(body: bytes) -> float:
    """Seconds /ping takes while ``body`` is being checked by a live guard (one worker)."""
    import requests
    import uvicorn

    from adapters.serving.local_server import free_port

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"\n"})

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(Guard(app), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    threading.Thread(
        target=lambda: requests.post(
            f"{url}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=600,
        ),
        daemon=True,
    ).start()
    time.sleep(0.02)
    took = timed(lambda: requests.get(f"{url}/ping", timeout=600))
    server.should_exit = True
    return took


def main() -> None:
    print("| body | old guard s | linear guard s |\n|---|---:|---:|")
    for size in (16_384, 65_536):
        body = b'\\"' * (size // 2)
        print(
            f"| {size // 1024} KB escaped quotes | {timed(old_json_depth, body):.3f} | "
            f"{timed(json_depth, body):.5f} |"
        )
    for size in (65_536, 8 * 1024 * 1024):
        body = b'\\"' * (size // 2)
        print(
            f"| {size // 1024} KB escaped quotes, linear only | - | {timed(json_depth, body):.4f} |"
        )
    body = b'\\"' * 32_768
    print(
        f"\n/ping while a 64 KB body of escaped quotes is checked: "
        f"{ping_while_posting(body) * 1000:.1f} ms"
    )
    body = b'\\"' * (4 * 1024 * 1024)
    print(
        f"/ping while an 8 MB body of escaped quotes is checked: "
        f"{ping_while_posting(body) * 1000:.1f} ms"
    )
    buffer = io.BytesIO()
    pd.DataFrame({"mastery": np.zeros(3_000_000, dtype=np.int8)}).to_parquet(buffer)
    bomb = buffer.getvalue()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    problem = Guard(None).check_body(bomb, PARQUET)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(
        f"\nparquet bomb ({len(bomb) // 1024} KB, 3,000,000 rows): answered {problem[0]} "
        f"({problem[2]}); peak RSS grew {grown:.1f} MB"
    )


if __name__ == "__main__":
    main()
