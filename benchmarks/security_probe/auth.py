"""Probe 4, auth: bearer-token variants (401, nothing stored) and the CLI endpoint's checks (secret, Host, Origin,
content type, foreign --url, paths, symlinks), and the CLI client's own."""

from __future__ import annotations

import base64
import json
import random
import stat
from pathlib import Path

from security_probe.common import CLI, JSON_CT, PROTO, SECRET_HEADER, Probe, Serve, child_env, grpc_raw, post, run, stored_counts
from security_probe.payloads import trace_request


def _token_variants(p: Probe, rng: random.Random, serve: Serve, token: str) -> tuple[list, dict[str, int]]:
    """OTLP over HTTP and gRPC with each Authorization variant: (what, answer, allowed answers), and the spans each
    marker should have stored."""
    bad = {"missing": None, "wrong": "Bearer nope", "prefix": f"Bearer {token[:-1]}", "suffix": f"Bearer {token}x",
           "token upper-cased": f"Bearer {token.upper()}", "no scheme": token, "scheme only": "Bearer",
           "empty": "", "Basic token": "Basic " + base64.b64encode(token.encode()).decode(),
           "Basic user:token": "Basic " + base64.b64encode(f"u:{token}".encode()).decode(),
           "two tokens": f"Bearer {token}, Bearer {token}", "Bearer with NUL": f"Bearer {token}\x00",
           "Token scheme": f"Token {token}"}
    lenient = {"lower-case scheme": f"bearer {token}", "two spaces": f"Bearer  {token}", "tab": f"Bearer\t{token}"}
    expected_stored: dict[str, int] = {}
    results: list[tuple[str, object, set]] = []
    for what, value in list(bad.items()) + list(lenient.items()) + [("correct", f"Bearer {token}")]:
        m = f"au{len(results)}"
        headers = {"Content-Type": PROTO}
        if value is not None:
            headers["Authorization"] = value
        body = trace_request(rng, m, 2).SerializeToString()
        status = post(serve.http_port, "/v1/traces", body, headers)[0]
        if status == -1 and "\x00" in (value or ""):
            status = 401  # http.client refuses to send a NUL in a header: nothing left this machine
        expect = {401} if what in bad else {200, 401} if what in lenient else {200}
        if "NUL" in what:
            expect = {400, 401}  # the HTTP parser may refuse a NUL in a header before the token is read
        results.append((f"HTTP {what}", status, expect))
        expected_stored[m] = 2 if status == 200 else 0
    for what, value in [("missing", None), ("wrong", "Bearer nope"), ("prefix", f"Bearer {token[:-1]}"),
                        ("Basic", "Basic " + base64.b64encode(token.encode()).decode()),
                        ("correct", f"Bearer {token}")]:
        m = f"au{len(results)}"
        md = None if value is None else [("authorization", value)]
        code = grpc_raw(serve.grpc_port, "traces", trace_request(rng, m, 2).SerializeToString(), metadata=md)
        results.append((f"gRPC {what}", code, {"OK"} if what == "correct" else {"UNAUTHENTICATED"}))
        expected_stored[m] = 2 if code == "OK" else 0
    return results, expected_stored


def _refusals(report: list[str], secret: str, port: int) -> list[tuple[str, list[str] | None, dict, int]]:
    """Requests of the CLI endpoint it must refuse: (what, argv, header changes or `_body`, status)."""
    return [
        ("no secret", report, {SECRET_HEADER: None}, 403),
        ("wrong secret", report, {SECRET_HEADER: "guess"}, 403),
        ("secret prefix", report, {SECRET_HEADER: secret[:-1]}, 403),
        ("secret upper-cased", report, {SECRET_HEADER: secret.upper()}, 403),
        ("no bearer token", report, {"Authorization": None}, 401),
        ("Host evil.example", report, {"Host": "evil.example"}, 403),
        ("Host evil.example:port", report, {"Host": f"evil.example:{port}"}, 403),
        ("Host 127.0.0.1.evil.example", report, {"Host": f"127.0.0.1.evil.example:{port}"}, 403),
        ("Host localhost.evil.example", report, {"Host": "localhost.evil.example"}, 403),
        ("Origin", report, {"Origin": "http://evil.example"}, 403),
        ("Origin null", report, {"Origin": "null"}, 403),
        ("Sec-Fetch-Site", report, {"Sec-Fetch-Site": "cross-site"}, 403),
        ("Sec-Fetch-Mode", report, {"Sec-Fetch-Mode": "no-cors"}, 403),
        ("text/plain", report, {"Content-Type": "text/plain"}, 415),
        ("form", report, {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ("no content type", report, {"Content-Type": None}, 415),
        ("argv not a list", None, {"_body": b'{"argv": "status"}'}, 400),
        ("argv of numbers", None, {"_body": b'{"argv": [1, 2]}'}, 400),
        ("body not JSON", None, {"_body": b"{nope"}, 400),
        ("body a JSON list", None, {"_body": b'["status"]'}, 400),
        ("body over 1 MiB", None, {"_body": json.dumps({"argv": ["status", "x" * (2**20 + 10)]}).encode()}, 413),
    ]


def _exit2(url: str, work: Path, link: Path) -> list[tuple[str, list[str]]]:
    """Commands the CLI endpoint accepts as requests but must refuse as usage errors (exit code 2)."""
    return [
        ("non-loopback --url (http)", ["status", "--url", "http://10.1.2.3:8123"]),
        ("non-loopback --url (clickhouse)", ["status", "--url", "clickhouse://evil.example:9000/x"]),
        ("another chDB directory", ["status", "--url", f"chdb://{work / 'other-store'}"]),
        ("another database", ["status", "--url", url, "--database", "other"]),
        ("no --url", ["baseline", "list"]),
        ("relative --out", ["report", "--url", url, "--out", "relative.html"]),
        ("relative --config", ["analyze", "--url", url, "--model", "m", "--last", "1h", "--config", "mw.toml"]),
        ("--out a symlink", ["report", "--url", url, "--out", str(link)]),
        ("--out a directory", ["report", "--url", url, "--out", str(work)]),
        ("--out in a missing directory", ["report", "--url", url, "--out", str(work / "no" / "dir" / "r.html")]),
        ("--out /dev/null", ["report", "--url", url, "--out", "/dev/null"]),
        ("--file /dev/zero", ["baseline", "create", "--url", url, "--model", "m", "--version", "1",
                              "--file", "/dev/zero"]),
        ("command serve", ["serve", "--url", url]),
        ("command schema apply", ["schema", "apply", "--url", url]),
        ("command demo", ["demo"]),
        ("command analyzer", ["analyzer", "--url", url]),
    ]


def _cli_endpoint(p: Probe, serve: Serve, store: Path, work: Path, token: str, written: list[Path]) -> int:
    """The CLI endpoint's checks (lock file mode, secret, headers, argv, paths), then the CLI client's; the number
    of refusals tried. What a refused command must not have written is added to `written`."""
    lock = store / "modelwatch-serve.json"
    mode = stat.S_IMODE(lock.stat().st_mode)
    p.check(mode == 0o600, f"lock file mode {oct(mode)}")
    secret = json.loads(lock.read_text())["secret"]
    url = f"chdb://{store}"
    out = work / "report.html"
    precious = work / "precious.txt"
    precious.write_text("keep me")
    link = work / "link.html"
    link.symlink_to(precious)
    good_headers = {"Host": f"127.0.0.1:{serve.http_port}", "Content-Type": JSON_CT, SECRET_HEADER: secret,
                    "Authorization": f"Bearer {token}"}

    def cli_post(argv, **changes) -> tuple[int, dict]:
        headers = {k: v for k, v in {**good_headers, **changes}.items() if v is not None}
        body = changes.pop("_body", None)
        headers.pop("_body", None)
        status, _h, data = post(serve.http_port, "/v1/modelwatch/cli",
                                body if body is not None else json.dumps({"argv": argv}).encode(), headers)
        try:
            return status, json.loads(data)
        except ValueError:
            return status, {"raw": data[:200]}

    refusals = _refusals(["report", "--url", url, "--out", str(out)], secret, serve.http_port)
    for what, argv, changes, want in refusals:
        status, _answer = cli_post(argv, **changes)
        p.check(status == want, f"CLI endpoint, {what}: answered {status}, expected {want}")
    exit2 = _exit2(url, work, link)
    for what, argv in exit2:
        status, answer = cli_post(argv)
        p.check(status == 200 and answer.get("code") == 2,
                f"CLI endpoint, {what}: answered {status} {str(answer)[:160]}, expected exit code 2")
    written += [out, work / "relative.html", work / "other-store", work / "no", store / "relative.html"]
    p.check(precious.read_text() == "keep me" and link.is_symlink(), "the symlink's target was overwritten")
    status, answer = cli_post(["status", "--url", url])
    p.check(status == 200 and answer.get("code") == 0 and str(store) in answer.get("stdout", ""),
            f"CLI endpoint with the secret: {status} {str(answer)[:200]}")
    _cli_client(p, lock, url, store, work, token, out)
    return len(refusals) + len(exit2)


def _cli_client(p: Probe, lock: Path, url: str, store: Path, work: Path, token: str, out: Path) -> None:
    """The CLI itself: with the token it forwards; a lock file others may read is not trusted."""
    shown = run(CLI + ["status", "--url", url], cwd=work, env=child_env(MODELWATCH_TOKEN=token))
    p.check(shown.returncode == 0 and str(store) in shown.stdout,
            f"`modelwatch status` with MODELWATCH_TOKEN: exit {shown.returncode} {shown.stderr[-200:]}")
    no_token = run(CLI + ["status", "--url", url], cwd=work)
    p.check(no_token.returncode != 0, f"`modelwatch status` without the token: exit {no_token.returncode}")
    lock.chmod(0o644)
    try:
        loose = run(CLI + ["report", "--url", url, "--out", str(out)], cwd=work,
                    env=child_env(MODELWATCH_TOKEN=token))
    finally:
        lock.chmod(0o600)
    p.check(loose.returncode != 0 and not out.exists(),
            f"`modelwatch report` trusted a lock file of mode 0644: exit {loose.returncode}")
    p.check(len((loose.stdout + loose.stderr).strip().splitlines()) <= 2,
            f"refusal of a 0644 lock file is not one line: {(loose.stdout + loose.stderr)[-300:]}")


def probe_auth(p: Probe, args, tmp: Path) -> None:
    rng = random.Random(args.seed + 4)
    store, work = tmp / "p4-store", tmp / "p4-work"
    work.mkdir()
    token = "tok-" + "".join(rng.choice("abcdefghijkmnopqrstuvwxyz23456789") for _ in range(32))
    token_file = tmp / "token"
    token_file.write_text(f"\n  {token}  \n")
    token_file.chmod(0o600)
    serve = Serve(store, token_file=token_file, cwd=work)
    written: list[Path] = []
    try:
        results, expected_stored = _token_variants(p, rng, serve, token)
        endpoint_checks = _cli_endpoint(p, serve, store, work, token, written)
    finally:
        rc = serve.stop()
    p.check(rc == 0, f"serve's SIGTERM exit code {rc}")
    for path in written:
        p.check(not path.exists(), f"a refused command wrote {path}")
    stored = stored_counts(store, {"traces": ["otel_traces"]})
    for i, (what, status, expect) in enumerate(results):
        p.check(status in expect, f"{what}: answered {status}, expected {sorted(expect)}")
        m = f"au{i}"
        p.check(stored.get(m, 0) == expected_stored[m], f"{what} ({status}): {stored.get(m, 0)} spans stored, "
                                                         f"expected {expected_stored[m]}")
    p.detail = (f"{len(results)} OTLP token variants, {endpoint_checks} CLI endpoint refusals, "
                "lock file mode, CLI client checks")
