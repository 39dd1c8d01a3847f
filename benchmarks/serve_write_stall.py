"""A client that recalls from a running mindrec-serve without pause while /rec/insert_data
rewrites every item (benchmarks/serve_write_stall.sh): the recall latencies before the write
and during it.

  python serve_write_stall.py URL [--before 5] [--items N] [--check]
Prints: before p50/p99/max, insert_data seconds, during p50/p99/max and the count of recalls.
--check (CI): exit 1 unless recalls were answered during the write and the longest of them took
under a quarter of the write (a bound relative to the write, as the unit test's).
"""
import argparse
import http.client
import json
import random
import threading
import time


def recall_loop(host, port, items, stop, out):
    c = http.client.HTTPConnection(host, port, timeout=600)
    rng = random.Random(5)
    while not stop.is_set():
        body = json.dumps({"top_k": 50, "hist_item": [[rng.randrange(1, items) for _ in range(10)]]})
        t0 = time.perf_counter()
        c.request("POST", "/rec/recall", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        t1 = time.perf_counter()
        if r.status != 200:
            raise SystemExit(f"recall answered {r.status}")
        out.append((t0, t1))


def stats(spans):
    lat = sorted((b - a) * 1e3 for a, b in spans)
    if not lat:
        return "no recalls"
    return (f"p50 {lat[len(lat) // 2]:.2f} ms, p99 {lat[min(len(lat) - 1, int(len(lat) * 0.99))]:.2f} ms, "
            f"max {lat[-1]:.2f} ms over {len(lat)} recalls")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--before", type=float, default=5)
    ap.add_argument("--items", type=int, required=True)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    host, port = a.url.split("//")[1].split(":")
    port = int(port)
    spans, stop = [], threading.Event()
    t = threading.Thread(target=recall_loop, args=(host, port, a.items, stop, spans))
    t.start()
    time.sleep(a.before)
    c = http.client.HTTPConnection(host, port, timeout=3600)
    w0 = time.perf_counter()
    c.request("POST", "/rec/insert_data")
    r = c.getresponse()
    answer = r.read().decode()
    w1 = time.perf_counter()
    time.sleep(0.5)
    stop.set()
    t.join()
    before = [s for s in spans if s[1] < w0]
    during = [s for s in spans if s[1] > w0 and s[0] < w1]  # answered while the write ran
    print(f"insert_data: {r.status} {answer} in {w1 - w0:.1f} s")
    print(f"recall before the write: {stats(before)}")
    print(f"recall during the write: {stats(during)}")
    if a.check:
        longest = max(((b - a_) for a_, b in during), default=None)
        if r.status != 200 or longest is None or longest > 0.25 * (w1 - w0):
            raise SystemExit(f"FAIL: the write held recalls (longest {longest} s of a {w1 - w0:.2f} s write)")
        print(f"check: the longest recall during the write took {longest / (w1 - w0):.4f} of it")


if __name__ == "__main__":
    main()
