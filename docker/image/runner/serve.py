#!/usr/bin/env python3
"""serve.py: the warm sanity checker of the gradeflow runtime image.

A long-lived, sandboxed container runs it instead of one gradeflow-run
container per submission. It only parses and compiles: Python files are
checked with sanity.py's own `check` (compile() and the AST import scan,
never an import), Java sources are compiled by a warm JVM (GradeflowJavac,
javax.tools with -proc:none) and the jar is checked with sanity.py's
`jarcheck` and `bytecode`. Verdicts are sanity.py's result.json, so they are
the same as the one-shot runner's.

Protocol: one JSON request per line on stdin, one JSON answer per line on
stdout, in order:
  request  {"id": "r7", "kind": "python"|"java", "forbid": "a,b", "main_class": "C"}
           the submission's files are in /spool/ID (read-only, written by the worker)
  answer   {"id": "r7", "result": {...result.json...}, "jar": "<base64>"}
The first line written is {"ready": true} once the JVM is warm. Anything
else goes to stderr. A crash or a hang is the worker's to notice: it kills
the container and answers that request with a one-shot container.

Privileges: started as root with only CAP_SETUID/CAP_SETGID (like the
runner), it starts the JVM as the student uid (1000), then drops itself to
the runner uid (999) for good, before reading any request.
"""
import argparse
import base64
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sanity  # noqa: E402  (the one-shot runner's checks, unchanged)

RUNNER_UID = 999
STUDENT_UID = 1000
GF_HOME = os.environ.get("GRADEFLOW_HOME", "/opt/gradeflow")
SPOOL = "/spool"
WORK = "/scratch/serve"  # the checker's own state, mode 0700
JAVAC_OUT = "/scratch/javac/classes"  # the JVM's, emptied per compile
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
WARMUP = os.path.join(GF_HOME, "cds", "job")


def log(msg):
    print(f"[serve] {msg}", file=sys.stderr, flush=True)


class Javac:
    """The warm JVM: one compile at a time over a pipe."""

    def __init__(self, as_student):
        with open(os.path.join(GF_HOME, "classpath"), encoding="utf-8") as f:
            classpath = f.read().strip()
        cmd = ["java", "-XX:+UseSerialGC", "-XX:MaxRAMPercentage=40", "-XX:-UsePerfData",
               "-XX:+DisableAttachMechanism", "-Xss8m", "-Djava.io.tmpdir=/scratch/tmp",
               "-cp", os.path.join(GF_HOME, "javac-server"), "GradeflowJavac", classpath, JAVAC_OUT]
        kw = {}
        if as_student:
            kw = dict(user=STUDENT_UID, group=STUDENT_UID, extra_groups=[])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=2,
                                     cwd="/scratch", close_fds=True, **kw)

    def compile(self, root, rels):
        self.proc.stdin.write(("\t".join([root] + rels) + "\n").encode("utf-8"))
        self.proc.stdin.flush()
        head = self.proc.stdout.readline()
        if not head:
            raise RuntimeError("the compiler JVM ended")
        rc, n = (int(x) for x in head.split())
        body = self.proc.stdout.read(n)
        if len(body) != n:
            raise RuntimeError("the compiler JVM ended mid-answer")
        return rc, body.decode("utf-8", "replace")


def _quiet(fn, *args):
    """Run a sanity.py command, returning (exit code, what it printed)."""
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(buf):
        rc = fn(*args)
    return rc, buf.getvalue().strip()


def _result(kind, ok, rc, ms, message, **extra):
    """sanity.py's own `result`, as the runner's result() calls it."""
    out = os.path.join(WORK, "result.json")
    ns = argparse.Namespace(kind=kind, ok=ok, exit_code=rc, elapsed_ms=ms, message=message,
                            message_file=None, raw_message=False, errors_from_javac=None,
                            root="/job", timed_out=False, forbid="", out=out)
    for k, v in extra.items():
        setattr(ns, k, v)
    sanity.cmd_result(ns)
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def check_python(root, forbid):
    out = os.path.join(WORK, "result.json")
    try:
        _quiet(sanity.cmd_check, argparse.Namespace(root=root, forbid=forbid, out=out))
        with open(out, encoding="utf-8") as f:
            return json.load(f)
    except Exception:  # the runner's answer to a checker crash
        return _result("sanity-python", False, 1, 0,
                       "the checker could not process this submission (it may be too large or too deeply nested)")


def _files(root, suffix, top_only=False):
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if top_only:
            dirnames[:] = []
        for name in filenames:
            full = os.path.join(dirpath, name)
            if name.endswith(suffix) and os.path.isfile(full) and not os.path.islink(full):
                found.append(full)
    return sorted(found, key=lambda p: p.encode("utf-8", "surrogateescape"))  # LC_ALL=C sort


def check_java(javac, root, main, forbid):
    """The runner's compile-java, step for step; returns (result, jar bytes)."""
    kind = "compile-java"
    t0 = time.monotonic()
    ms = lambda: int((time.monotonic() - t0) * 1000)  # noqa: E731
    rel = lambda p: os.path.relpath(p, root)  # noqa: E731
    sources = _files(root, ".java")
    check = argparse.Namespace(main_class=main or None, manifest_out=None)
    if not sources:
        jars = _files(root, ".jar", top_only=True)
        if len(jars) != 1:
            return _result(kind, False, 2, 0, f"no .java files in the submission, and not exactly one .jar (found {len(jars)})"), None
        check.jar = jars[0]
        rc, why = _quiet(sanity.cmd_jarcheck, check)
        if rc:
            return _result(kind, False, 1, ms(), f"{rel(jars[0])}: {why}"), None
        rc, why = _quiet(sanity.cmd_bytecode, argparse.Namespace(jar=jars[0], forbid=forbid))
        if rc:
            return _result(kind, False, 1, ms(), f"{rel(jars[0])}: {why}"), None
        with open(jars[0], "rb") as f:
            jar = f.read()
        msg = f"prebuilt {rel(jars[0])} is a valid jar" + (f" containing {main}" if main else "")
        return _result(kind, True, 0, ms(), msg), jar
    if javac is None:
        raise RuntimeError("no compiler JVM")
    rc, text = javac.compile(root, [rel(s) for s in sources])
    if rc != 0:
        logf = os.path.join(WORK, "javac.log")
        with open(logf, "w", encoding="utf-8") as f:
            f.write(text)
        return _result(kind, False, rc, ms(), "", message_file=logf, raw_message=True,
                       errors_from_javac=logf), None
    jarf = os.path.join(WORK, "job.jar")
    sanity.cmd_mkjar(argparse.Namespace(classdir=JAVAC_OUT, jar=jarf))
    check.jar = jarf
    rc, why = _quiet(sanity.cmd_jarcheck, check)
    if rc:
        return _result(kind, False, 1, ms(), f"compiled, but {why}"), None
    rc, why = _quiet(sanity.cmd_bytecode, argparse.Namespace(jar=jarf, forbid=forbid))
    if rc:
        return _result(kind, False, 1, ms(), why), None
    with open(jarf, "rb") as f:
        jar = f.read()
    return _result(kind, True, 0, ms(), f"compiled {len(sources)} source file(s) into job.jar"), jar


def warm_up(javac):
    """Compile the image's sample job a few times, so the first student's
    compile finds the JIT warm and the Hadoop jars open."""
    src = [n for n in os.listdir(WARMUP) if n.endswith(".java")] if os.path.isdir(WARMUP) else []
    for _ in range(4 if src else 0):
        javac.compile(WARMUP, src)
    check_python(WARMUP, "os")


def drop_privileges():
    if os.getuid() != 0:
        return
    os.setgroups([])
    os.setresgid(RUNNER_UID, RUNNER_UID, RUNNER_UID)
    os.setresuid(RUNNER_UID, RUNNER_UID, RUNNER_UID)


def main():
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not reach the answer channel
    os.umask(0o022)
    as_student = os.getuid() == 0
    for d in ("/scratch/tmp",):
        os.makedirs(d, mode=0o1777, exist_ok=True)
        os.chmod(d, 0o1777)
    javac = Javac(as_student)
    drop_privileges()
    os.makedirs(WORK, mode=0o700, exist_ok=True)
    os.chmod(WORK, 0o700)
    warm_up(javac)

    def send(obj):
        answers.write(json.dumps(obj, ensure_ascii=True).encode("ascii") + b"\n")
        answers.flush()

    send({"ready": True})
    for line in sys.stdin.buffer:
        req = json.loads(line)
        rid = str(req.get("id", ""))
        if not REQUEST_ID.match(rid):
            send({"id": rid, "error": "bad request id"})
            continue
        root = os.path.join(SPOOL, rid)
        forbid = str(req.get("forbid", ""))
        if req.get("kind") == "java":
            result, jar = check_java(javac, root, str(req.get("main_class", "")), forbid)
        else:
            result, jar = check_python(root, forbid), None
        ans = {"id": rid, "result": result}
        if jar is not None:
            ans["jar"] = base64.b64encode(jar).decode("ascii")
        send(ans)
        for name in ("job.jar", "javac.log", "result.json"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(WORK, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
