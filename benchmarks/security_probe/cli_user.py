"""Probe 7, the CLI as a new user: mistakes and hostile arguments get a documented exit code and a short message,
never a traceback or a raw escape sequence, and a port out of range is refused rather than bound elsewhere."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

from security_probe.common import CLI, Probe, Serve, run


def _write_files(rng: random.Random, work: Path) -> None:
    """Broken configs, CSV and parquet files, a token file of blanks and a certificate that is not one."""
    files = {"bad.toml": "[schedule\nevery_minutes = 1\n", "nan.toml": "[schedule]\nevery_minutes = nan\n",
             "inf.toml": "[schedule]\nwindow_hours = inf\n", "unknown.toml": "[schedul]\nx = 1\n",
             "hostile.toml": '[[models]]\nname = "\\u001b[2J\\u001b]0;pwned\\u0007"\n',
             "empty.csv": "", "header.csv": "x,y\n", "nan.csv": "x,y\nnan,inf\n-inf,1e400\n,\n",
             "ragged.csv": "x,y\n1\n1,2,3\n\"unterminated\n", "empty-token": "  \n"}
    for name, text in files.items():
        (work / name).write_text(text)
    (work / "garbage.csv").write_bytes(rng.randbytes(4096))
    (work / "garbage.parquet").write_bytes(b"PAR1" + rng.randbytes(4096))
    (work / "cert.pem").write_text("not a certificate\n")


def _commands(work: Path) -> list[tuple[list[str], set[int]]]:
    """(argv, the exit codes allowed); STORE is replaced by each worker's own store."""
    url = "chdb://STORE"  # each of the two workers has a store of its own (an embedded store has one owner)
    other = "chdb://STORE-serve"
    w = lambda name: str(work / name)  # noqa: E731
    esc = "\x1b[2J\x1b]0;pwned\x07"
    an = ["analyze", "--url", url, "--model"]
    bc = ["baseline", "create", "--url", url, "--model", "m", "--version", "1"]
    return [
        (["status", "--url", url], {1}),  # no store yet: says how to make one
        ([], {0, 2}), (["nosuchcommand"], {2}), (["analyze"], {2}), (["analyze", "--url", url], {2}),
        (an + ["nope", "--last", "24h"], {1, 2}),
        (an + [esc, "--last", "24h"], {1, 2}),
        (an + ["m", "--last", "banana"], {2}), (an + ["m", "--last", "-5h"], {1, 2}),
        (an + ["m", "--since", "2026-13-45"], {2}), (an + ["m", "--last", "1h", "--numeric-sample-rows", "-5"], {2}),
        (an + ["m", "--last", "1h", "--baseline", "'; DROP TABLE ml_baselines; --"], {1, 2}),
        (an + ["m", "--last", "1h", "--config", w("bad.toml")], {2}),
        (an + ["m", "--last", "1h", "--config", w("nan.toml")], {2}),
        (an + ["m", "--last", "1h", "--config", w("hostile.toml")], {1, 2}),
        (an + ["m", "--last", "1h", "--config", w("missing.toml")], {2}),
        (bc + ["--file", w("missing.csv")], {1, 2}), (bc + ["--file", w("empty.csv")], {1, 2}),
        (bc + ["--file", w("nan.csv")], {0, 1, 2}), (bc + ["--file", w("ragged.csv")], {0, 1, 2}),
        (bc + ["--file", w("garbage.csv")], {1, 2}), (bc + ["--file", w("garbage.parquet")], {1, 2}),
        (bc + ["--since", "7d"], {1, 2}), (bc, {2}),
        (["report", "--url", url, "--out", w("no/dir/r.html")], {0}),  # run locally, it makes the directories
        (["report", "--url", url, "--out", str(work)], {1, 2}),
        (["status", "--url", url, "--model", esc], {0, 1}),
        (["status", "--url", url, "--database", "x'; DROP DATABASE modelwatch; --"], {1, 2}),
        (["status", "--url", url, "--database", esc], {1, 2}),
        (["status", "--url", "chdb:///proc/nope"], {1, 2}),
        (["status", "--url", "http://127.0.0.1:1"], {1}),
        (["status", "--url", "garbage://x"], {1, 2}), (["status", "--url", ""], {0, 1, 2}),
        (["status", "--url", "http://user:pw@127.0.0.1:1/?x=" + esc], {1, 2}),
        (["schema", "apply", "--url", url, "--retention-days", "-1"], {2}),
        (["schema", "apply", "--url", url, "--retention-days", "nan"], {2}),
        (["serve", "--url", other, "--http-port", "99999"], {1, 2}),
        (["serve", "--url", other, "--token-file", w("missing-token")], {2}),
        (["serve", "--url", other, "--token-file", w("empty-token")], {2}),
        (["serve", "--url", other, "--tls-cert", w("cert.pem")], {2}),
        (["serve", "--url", other, "--tls-cert", w("cert.pem"), "--tls-key", w("cert.pem")], {2}),
        (["serve", "--url", other, "--config", w("nan.toml")], {2}),
        (["status", "--url", url], {0}),  # the store is still whole after all that
    ]


def _judge(p: Probe, argv: list[str], want: set[int], out) -> None:
    text = out.stdout + out.stderr
    shown = " ".join(argv)[:110].encode("unicode_escape").decode()
    p.check(out.returncode in want, f"`modelwatch {shown}` exited {out.returncode}, expected {sorted(want)}: "
                                    f"{out.stderr.strip()[-200:]!r}")
    p.check("Traceback" not in text, f"`modelwatch {shown}` printed a traceback: {out.stderr.strip()[-300:]!r}")
    p.check("\x1b" not in text and "\x07" not in text,
            f"`modelwatch {shown}` echoed raw control characters: {text[-200:]!r}")
    if out.returncode not in (0, 3):
        said = [ln for ln in out.stderr.strip().splitlines() if not ln.startswith(("usage:", " "))]
        p.check(len(said) <= 2 and len(out.stderr) < 4000,
                f"`modelwatch {shown}`: a {len(said)}-line failure: {out.stderr.strip()[:300]!r}")


def _port_out_of_range(p: Probe, tmp: Path) -> None:
    """A port out of range must be a usage error, not a listener on some other port."""
    for flag, port in (("--grpc-port", "99999"), ("--grpc-port", "-1")):
        try:
            srv = Serve(tmp / f"p7-ports{port}", extra=[flag, port], timeout=60)
        except RuntimeError as exc:
            p.check("Traceback" not in str(exc), f"`serve {flag} {port}` printed a traceback")
            continue
        p.check(False, f"`serve {flag} {port}` started, listening on gRPC port {srv.grpc_port} "
                       f"(HTTP {srv.http_port}) instead of refusing the port")
        srv.stop()


def probe_cli_usage(p: Probe, args, tmp: Path) -> None:
    """Mistakes and hostile arguments of a new user: a documented exit code, no traceback, a short message, and no
    escape sequence echoed to the terminal."""
    rng = random.Random(args.seed + 7)
    work = tmp / "p7-work"
    work.mkdir()
    _write_files(rng, work)
    cmds = _commands(work)
    first, last = cmds[0], cmds[-1]  # status before the store exists; status after everything
    rest = cmds[1:-1]
    if args.quick:
        rest = rest[::4]
    make = (["schema", "apply", "--url", "chdb://STORE"], {0})
    plans = [[first, make] + rest[0::2] + [last], [make] + rest[1::2] + [last]]
    lock = threading.Lock()
    took: list[tuple[float, str]] = []

    def worker(k: int) -> None:
        store = str(tmp / f"p7-store{k}")
        for argv, want in plans[k]:
            argv = [a.replace("chdb://STORE", f"chdb://{store}") for a in argv]
            t = time.monotonic()
            out = run(CLI + argv, timeout=60, cwd=work)
            with lock:
                took.append((time.monotonic() - t, " ".join(argv)[:80]))
                _judge(p, argv, want, out)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    _port_out_of_range(p, tmp)
    if os.environ.get("PROBE_DEBUG"):
        for d, c in sorted(took, reverse=True):
            print(f"    {d:5.1f} s  {c}")
    p.detail = f"{sum(map(len, plans))} commands with mistakes or hostile arguments (two stores, two at a time)"
