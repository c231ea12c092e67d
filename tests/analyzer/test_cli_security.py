"""The CLI endpoint answers only the local user; text from the store cannot drive the terminal; failures are one line.

The endpoint tests run a real ``modelwatch serve`` (no token: the default)
in a process of its own and speak raw HTTP to it, with the headers a
browser, a DNS-rebound page or another local user would send.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from analyzer_data import T0, insert
from modelwatch_analyzer.analysis import baseline
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.cli import command as cli
from modelwatch_analyzer.store import schema
from modelwatch_analyzer.store.client import Store

MODELWATCH = [sys.executable, "-c", "import sys; from modelwatch_analyzer.cli.command import main; sys.exit(main())"]
SECRET = "X-Modelwatch-Cli-Secret"


def _cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*MODELWATCH, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tokenless serve on a store of its own, started in a directory of its own; yields (store dir, lock info)."""
    root = tmp_path_factory.mktemp("served")
    directory, cwd = root / "store", root / "serve-cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MODELWATCH_TOKEN"}
    proc = subprocess.Popen([*MODELWATCH, "serve", "--url", f"chdb://{directory}", "--grpc-port", "0",
                             "--http-port", "0", "--ui-port", "0", "--no-analyzer"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock = directory / "modelwatch-serve.json"
    deadline = time.monotonic() + 60
    while not lock.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "serve did not start"
        time.sleep(0.1)
    yield directory, json.loads(lock.read_text())
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def _post(info: dict, argv: list[str] | None = None, *, body: bytes | None = None, host: str | None = None,
          content_type: str | None = "application/json", secret: str | None = "from-file",
          extra: dict[str, str] | None = None) -> tuple[int, dict]:
    """POST to the CLI endpoint with exactly these headers; (status, JSON answer)."""
    address = info["http"].split("//", 1)[1]
    conn = http.client.HTTPConnection(address, timeout=60)
    payload = body if body is not None else json.dumps({"argv": argv}).encode()
    conn.putrequest("POST", "/v1/modelwatch/cli", skip_host=True, skip_accept_encoding=True)
    if host != "":  # "": no Host header at all
        conn.putheader("Host", address if host is None else host)
    if content_type is not None:
        conn.putheader("Content-Type", content_type)
    if secret is not None:
        conn.putheader(SECRET, info.get("secret", "") if secret == "from-file" else secret)
    for k, v in (extra or {}).items():
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(payload)))
    conn.endheaders(payload)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, {"raw": data.decode(errors="replace")}


def _report(directory: Path, out: Path) -> list[str]:
    return ["report", "--url", f"chdb://{directory}", "--out", str(out)]


# -- the CLI endpoint -------------------------------------------------------------------------


def test_the_lock_file_is_private_and_holds_a_per_run_secret(served):
    """serve writes modelwatch-serve.json with mode 0600 and a long random secret in it."""
    directory, info = served
    mode = stat.S_IMODE((directory / "modelwatch-serve.json").stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert len(info.get("secret", "")) >= 32


def test_a_request_without_the_secret_runs_nothing(served, tmp_path):
    """Without a token set, a request lacking the secret (or with a wrong one) is refused and writes no file."""
    directory, info = served
    out = tmp_path / "pwned.html"
    for secret in (None, "guess"):
        status, answer = _post(info, _report(directory, out), secret=secret)
        assert status == 403, answer
        assert not out.exists()


def test_a_foreign_host_header_is_refused(served, tmp_path):
    """A request whose Host is not a loopback name (a DNS-rebound page) is refused, secret or not."""
    directory, info = served
    out = tmp_path / "rebound.html"
    port = info["http"].rsplit(":", 1)[1]
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}", ""):
        status, _ = _post(info, _report(directory, out), host=host)
        assert status == (403 if host else 400), host  # no Host at all: the HTTP server refuses it already
    assert not out.exists()
    for host in (f"localhost:{port}", "127.0.0.1", f"[::1]:{port}"):  # loopback names are fine
        status, answer = _post(info, ["status", "--url", f"chdb://{directory}"], host=host)
        assert status == 200 and answer["code"] == 0, (host, answer)


def test_browser_requests_are_refused(served, tmp_path):
    """A request with an Origin or Sec-Fetch-* header (a web page's) is refused with 403."""
    directory, info = served
    out = tmp_path / "csrf.html"
    for extra in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        status, _ = _post(info, _report(directory, out), extra=extra)
        assert status == 403, extra
    assert not out.exists()


def test_only_json_bodies_are_accepted(served, tmp_path):
    """text/plain (what a cross-origin form may send without a preflight), form bodies or none at all get 415."""
    directory, info = served
    out = tmp_path / "plain.html"
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        status, _ = _post(info, _report(directory, out), content_type=ctype)
        assert status == 415, ctype
    assert not out.exists()


def test_forwarded_commands_stay_in_the_servers_store(served, tmp_path):
    """Another --url or --database, relative paths, missing directories and non-regular files are refused (exit 2)."""
    directory, info = served
    elsewhere = tmp_path / "new-store"
    status, answer = _post(info, ["status", "--url", f"chdb://{elsewhere}"])
    assert status == 200 and answer["code"] == 2 and "own store" in answer["stderr"], answer
    assert not elsewhere.exists()
    _, answer = _post(info, ["baseline", "list"])  # no --url: refused rather than guessed
    assert answer["code"] == 2 and "--url" in answer["stderr"]
    _, answer = _post(info, ["status", "--url", f"chdb://{directory}", "--database", "other"])
    assert answer["code"] == 2 and "own database" in answer["stderr"]
    _, answer = _post(info, ["report", "--url", f"chdb://{directory}", "--out", "relative.html"])
    assert answer["code"] == 2 and "absolute" in answer["stderr"]
    _, answer = _post(info, _report(directory, tmp_path / "no" / "such" / "dir" / "r.html"))
    assert answer["code"] == 2 and not (tmp_path / "no").exists()
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "link.html"
    link.symlink_to(target)
    _, answer = _post(info, _report(directory, link))
    assert answer["code"] == 2 and "not a regular file" in answer["stderr"]
    assert target.read_text() == "keep me"
    _, answer = _post(info, _report(directory, tmp_path))  # a directory
    assert answer["code"] == 2
    _, answer = _post(info, ["baseline", "create", "--url", f"chdb://{directory}", "--model", "m", "--version", "1",
                             "--file", "/dev/zero"])
    assert answer["code"] == 2 and "regular file" in answer["stderr"]
    _, answer = _post(info, ["analyze", "--url", f"chdb://{directory}", "--model", "m", "--last", "1h",
                             "--config", "modelwatch.toml"])
    assert answer["code"] == 2 and "absolute" in answer["stderr"]
    # what is allowed still runs: an absolute --out in an existing directory
    good = tmp_path / "ok.html"
    _, answer = _post(info, _report(directory, good))
    assert answer["code"] in (0, 1), answer  # 1: an empty store has nothing to report, said in one line
    _, answer = _post(info, ["status", "--url", f"chdb://{directory}"])
    assert answer["code"] == 0 and str(directory) in answer["stdout"]


def test_the_cli_forwards_with_the_secret_and_the_report_lands_in_the_callers_directory(served, tmp_path):
    """Without any token, `modelwatch status` and `report` run in serve; report's default --out is the caller's."""
    directory, _ = served
    env = {"MODELWATCH_TOKEN": ""}
    shown = _cli("status", "--url", f"chdb://{directory}", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert str(directory) in shown.stdout
    reported = _cli("report", "--url", f"chdb://{directory}", cwd=tmp_path, env=env)
    assert not (directory.parent / "serve-cwd" / "modelwatch-report.html").exists()
    assert reported.returncode == 0, reported.stderr
    assert (tmp_path / "modelwatch-report.html").exists()


def test_a_lock_file_others_can_read_is_not_trusted(served, tmp_path):
    """The client refuses to send commands (and the secret) when modelwatch-serve.json is readable by others."""
    directory, _ = served
    lock = directory / "modelwatch-serve.json"
    lock.chmod(0o644)
    try:
        result = _cli("status", "--url", f"chdb://{directory}", cwd=tmp_path)
    finally:
        lock.chmod(0o600)
    assert result.returncode == 1 and "not a private file" in result.stderr, result.stderr


# -- serve's token and bind options (these fail before anything listens) ---------------------------


def test_serve_warns_when_listening_beyond_loopback_without_a_token(tmp_path):
    """serve --host 0.0.0.0 without a token prints a WARNING line on stderr; with MODELWATCH_TOKEN it does not."""
    args = ("serve", "--host", "0.0.0.0", "--url", "ftp://nowhere", "--grpc-port", "0", "--http-port", "0", "--ui-port", "0")
    bare = _cli(*args, cwd=tmp_path, env={"MODELWATCH_TOKEN": ""})
    assert bare.returncode == 1  # the bad URL stops it before it binds
    assert "WARNING: listening on 0.0.0.0 without a token" in bare.stderr, bare.stderr
    tokened = _cli(*args, cwd=tmp_path, env={"MODELWATCH_TOKEN": "t0ken"})
    assert "WARNING" not in tokened.stderr


def test_a_token_on_argv_is_warned_about_and_a_bad_token_file_is_a_usage_error(tmp_path):
    """--token warns that ps shows it; --token-file unreadable, empty, or with --token exits 2 with one line."""
    argv_token = _cli("serve", "--token", "x", "--url", "ftp://nowhere", cwd=tmp_path)
    assert "visible" in argv_token.stderr and "--token-file" in argv_token.stderr
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    for extra, says in ((["--token-file", str(tmp_path / "missing")], "cannot read the token file"),
                        (["--token-file", str(empty)], "is empty"),
                        (["--token-file", str(empty), "--token", "x"], "not both")):
        result = _cli("serve", "--url", "ftp://nowhere", *extra, cwd=tmp_path)
        assert result.returncode == 2 and says in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_the_token_file_protects_serve(tmp_path):
    """serve --token-file FILE requires that token (whitespace stripped) on OTLP requests."""
    (tmp_path / "token").write_text("s3cret-from-file\n")
    directory = tmp_path / "store"
    proc = subprocess.Popen([*MODELWATCH, "serve", "--url", f"chdb://{directory}", "--grpc-port", "0", "--http-port", "0",
                             "--ui-port", "0",
                             "--no-analyzer", "--token-file", str(tmp_path / "token")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={k: v for k, v in os.environ.items() if k != "MODELWATCH_TOKEN"})
    try:
        deadline = time.monotonic() + 60
        while not (directory / "modelwatch-serve.json").exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        address = json.loads((directory / "modelwatch-serve.json").read_text())["http"].split("//", 1)[1]

        def post(auth: str | None) -> int:
            conn = http.client.HTTPConnection(address, timeout=30)
            headers = {"Content-Type": "application/json", **({"Authorization": auth} if auth else {})}
            conn.request("POST", "/v1/traces", body=b"{}", headers=headers)
            status = conn.getresponse().status
            conn.close()
            return status

        assert post(None) == 401
        assert post("Bearer wrong") == 401
        assert post("Bearer s3cret-from-file") == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


# -- control characters in text output ----------------------------------------------------------


EVIL_MODEL = "evil\x1b[2J\nmodel"
EVIL_FEATURE = "inc\x1b]0;pwned\x07ome\u202e"


def test_escape_shows_every_control_character_and_keeps_the_rest():
    """C0, DEL, C1, line separators and bidi overrides become visible escapes; other text is unchanged."""
    from modelwatch_analyzer.textsafe import escape

    assert escape("a\x1b[2Jb\nc\rd\te\x00\x7f\x9b\u2028\u202e") == "a\\x1b[2Jb\\nc\\rd\\te\\x00\\x7f\\x9b\\u2028\\u202e"
    assert escape("crédit ≥ 5 → ok ✓ 日本") == "crédit ≥ 5 → ok ✓ 日本"


def _assert_clean(text: str) -> None:
    lines = text.split("\n")
    assert not any(ch in line for line in lines for ch in "\x1b\x07\r\u202e\x9b"), text


def test_status_escapes_names_from_the_store(store, capsys):
    """Model names, versions and feature-derived text reach `status` output escaped; JSON keeps them exact."""
    rng = np.random.default_rng(3)
    insert(store, EVIL_MODEL, T0, {EVIL_FEATURE: rng.normal(0, 1, 200)}, {"plan": ["a\x1b[31m"] * 200},
           version="v\x1b[1A")
    url = ["--url", f"chdb://{store.location}", "--database", store.database]
    assert cli.main(["status", *url]) == 0
    out = capsys.readouterr().out
    _assert_clean(out)
    assert "evil\\x1b[2J\\nmodel" in out and "v\\x1b[1A" in out
    assert cli.main(["status", *url, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["model"] == EVIL_MODEL


@pytest.fixture
def default_db(store_dir):
    st = Store(f"chdb://{store_dir}")
    schema.apply(st)
    return st


def test_analyze_baseline_list_and_errors_escape_names(default_db, store_dir, capsys):
    """The analysis summary, `baseline list` and an error echoing a model name show control characters escaped."""
    model = EVIL_MODEL + "-analyze"
    rng = np.random.default_rng(4)
    insert(default_db, model, T0, {EVIL_FEATURE: rng.normal(0, 1, 1500)}, {"plan\x1b[K": rng.choice(["a", "b"], 1500)})
    insert(default_db, model, T0 + timedelta(hours=1), {EVIL_FEATURE: rng.normal(3, 1, 1500)},
           {"plan\x1b[K": rng.choice(["a", "b\x1b[5m"], 1500)}, id_prefix="c")
    base = baseline.from_window(default_db, Window(model, T0, T0 + timedelta(hours=1)), "1\x1b[H")
    baseline.save(default_db, base)
    url = f"chdb://{store_dir}"
    iso = "%Y-%m-%dT%H:%M:%S"
    assert cli.main(["analyze", "--url", url, "--model", model, "--since", (T0 + timedelta(hours=1)).strftime(iso),
                     "--until", (T0 + timedelta(hours=2)).strftime(iso), "--no-save"]) == 0
    out = capsys.readouterr().out
    _assert_clean(out)
    assert "inc\\x1b]0;pwned\\x07ome\\u202e" in out and "DRIFT" in out
    assert cli.main(["baseline", "list", "--url", url, "--model", model]) == 0
    listed = capsys.readouterr().out
    _assert_clean(listed)
    assert "1\\x1b[H" in listed
    assert cli.main(["analyze", "--url", url, "--model", "ghost\x1b[2J", "--last", "1h"]) == 1
    err = capsys.readouterr().err
    _assert_clean(err)
    assert len(err.strip().splitlines()) == 1 and "ghost\\x1b[2J" in err


# -- one-line failures: no extras, no store, unknown model, unreachable server ---------------------------

_BLOCKER = textwrap.dedent("""
    import sys

    BLOCKED = {"numpy", "scipy", "pandas", "pyarrow", "clickhouse_connect", "chdb", "uvicorn", "grpc"}

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    from modelwatch_analyzer.cli.command import main
    sys.exit(main())
""")


@pytest.mark.parametrize("argv", [
    ["demo", "--quick"], ["serve"], ["report"], ["analyze", "--model", "m", "--last", "1h"], ["baseline", "list"],
    ["baseline", "create", "--model", "m", "--version", "1", "--since", "1d"], ["analyzer", "--once"], ["status"],
    ["schema", "apply"],
], ids=lambda a: " ".join(a[:2]))
def test_without_the_extras_every_command_says_what_to_install(argv, tmp_path):
    """With numpy, chdb, uvicorn & co. missing, each server command prints one line naming the extra and exits 1."""
    url = [] if argv[0] == "demo" else ["--url", f"chdb://{tmp_path / 'store'}"]
    result = subprocess.run([sys.executable, "-c", _BLOCKER, *argv, *url], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'modelwatch[analyzer]'" in lines[0] and "missing:" in lines[0], lines
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("argv", [["status"], ["report"], ["baseline", "list"],
                                  ["analyze", "--model", "m", "--last", "1h", "--no-save"],
                                  ["analyze", "--model", "m", "--last", "1h"]], ids=" ".join)
def test_read_only_commands_do_not_create_a_store(argv, tmp_path):
    """status, report, baseline list and analyze on a chdb path holding no store: one line, exit 1, nothing created."""
    where = tmp_path / "typo" / "path"
    result = _cli(*argv, "--url", f"chdb://{where}", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"no store at {where}" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "typo").exists()


def test_status_of_a_model_not_in_the_store_says_so(store, capsys):
    """status --model X for an unknown X exits 1 naming the models there are, and prints no store-wide figures."""
    rng = np.random.default_rng(5)
    insert(store, "credit", T0, {"income": rng.normal(50, 10, 50)})
    url = ["--url", f"chdb://{store.location}", "--database", store.database]
    assert cli.main(["status", *url, "--model", "nope"]) == 1
    captured = capsys.readouterr()
    assert "no model 'nope'" in captured.err and "credit" in captured.err
    assert "spans stored" not in captured.out
    assert cli.main(["status", *url, "--model", "credit"]) == 0
    out = capsys.readouterr().out
    assert "spans stored in the whole store (every model):" in out  # store-wide figures say they are


@pytest.mark.parametrize("argv", [
    ["status"], ["report"], ["analyze", "--model", "m", "--last", "1h"], ["baseline", "list"],
    ["baseline", "create", "--model", "m", "--version", "1", "--since", "1d"], ["analyzer", "--once"],
    ["schema", "apply"], ["serve", "--grpc-port", "0", "--http-port", "0", "--ui-port", "0", "--no-analyzer"], ["demo", "--quick"],
], ids=lambda a: " ".join(a[:2]))
def test_an_unreachable_clickhouse_is_one_line_for_every_command(argv, capsys):
    """Every command given http://127.0.0.1:1 exits 1 with `cannot reach ClickHouse at ...: connection refused`."""
    assert cli.main([*argv, "--url", "http://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["modelwatch: cannot reach ClickHouse at http://127.0.0.1:1: connection refused"]


def test_an_unreachable_clickhouse_prints_nothing_else_in_a_real_process(tmp_path):
    """Run as a command, the driver's own warnings do not add lines to the one-line error."""
    result = _cli("status", "--url", "http://127.0.0.1:1", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "modelwatch: cannot reach ClickHouse at http://127.0.0.1:1: connection refused"]


@pytest.mark.parametrize("option,value", [("--grpc-port", "99999"), ("--grpc-port", "-1"), ("--http-port", "99999"),
                                          ("--http-port", "65536"), ("--http-port", "x")])
def test_serve_refuses_a_port_outside_0_to_65535_before_opening_anything(option, value, tmp_path, capsys):
    """A port out of range is a usage error (exit 2, naming the option), not a listener on another port (gRPC wrapped
    99999 to 34463) or a thread traceback (HTTP); no store is created."""
    store = tmp_path / "store"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["serve", "--url", f"chdb://{store}", option, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err and "Traceback" not in err
    assert not store.exists()
