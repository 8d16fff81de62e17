#!/usr/bin/env python3
"""sanity.py: Python helper of the gradeflow runner (docker/runner/gradeflow-run).

Subcommands (all write nothing to stdout; the runner owns stdout for its tar):
  check  --root DIR [--forbid a,b] --out RESULT.json
         Static check of every DIR/**/*.py WITHOUT executing it: syntax via
         compile(), then an AST scan for imports of forbidden modules.
  result --kind K --exit-code N --elapsed-ms N --message M [--ok] [--timed-out]
         [--errors-from-javac LOG --root DIR] --out RESULT.json
         Write the runner's result.json.
  jarcheck JAR [--main-class C] [--manifest-out FILE]
         Exit 0 if JAR is a readable zip (and contains class C), else 1 with a
         one-line reason on stderr; writes the manifest's Main-Class to FILE.
  mkjar  CLASSDIR JAR
         Zip CLASSDIR into JAR (a plain jar with a manifest but no Main-Class,
         so `RunJar JAR CLASS ...` passes CLASS as the main class).
  tee    FILE LIMIT
         Copy stdin to stderr, keeping the first LIMIT bytes in FILE.
  bytecode JAR [--forbid a.b,c.D]
         Exit 0 if no class in JAR uses a forbidden API (process creation,
         sockets, reflection and class loading, JDK internals, native code,
         plus the given package/class prefixes), else 1 with the first uses
         on stderr.
"""
import struct
import argparse
import ast
import json
import os
import re
import sys
import time
import zipfile

# ----------------------------------------------------------------- result.json


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def one_line(text, limit=4096):
    """Collapse whitespace/newlines so a message fits on one line."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------ python checking


def _matches(module, forbidden):
    """Return the forbidden entry that `module` falls under, or None."""
    for f in forbidden:
        if module == f or module.startswith(f + "."):
            return f
    return None


def _call_target(func):
    """Name a call's function for dynamic-import detection: '__import__',
    'importlib.import_module', 'import_module' or None."""
    if isinstance(func, ast.Name) and func.id in ("__import__", "import_module"):
        return func.id
    if isinstance(func, ast.Attribute):
        if func.attr == "__import__" and isinstance(func.value, ast.Name) and func.value.id == "builtins":
            return "__import__"
        if func.attr == "import_module" and isinstance(func.value, ast.Name) and func.value.id == "importlib":
            return "importlib.import_module"
    return None


def scan_imports(tree, forbidden):
    """Yield (lineno, col_offset, message) for each forbidden import in `tree`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _matches(alias.name, forbidden):
                    yield node.lineno, node.col_offset, f"forbidden module '{alias.name}' imported"
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: the submission's own code
                continue
            module = node.module or ""
            if _matches(module, forbidden):
                yield node.lineno, node.col_offset, f"forbidden module '{module}' imported"
                continue
            for alias in node.names:  # from x import y where x.y is forbidden
                full = f"{module}.{alias.name}"
                if _matches(full, forbidden):
                    yield node.lineno, node.col_offset, f"forbidden module '{full}' imported"
        elif isinstance(node, ast.Call):
            target = _call_target(node.func)
            if target is None or not node.args:
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if arg.value.startswith("."):
                    continue  # relative import_module(".x", package)
                if _matches(arg.value, forbidden):
                    yield node.lineno, node.col_offset, f"forbidden module '{arg.value}' imported"
            elif target != "import_module":
                # A computed module name could hide any module; refuse it while
                # a forbid list is in force. (Bare import_module may be a
                # user-defined function, so it is only checked with a literal.)
                yield node.lineno, node.col_offset, (
                    f"dynamic import via {target}() with a non-literal module name is not allowed"
                )


def check_file(path, rel, forbidden):
    """Return the list of error dicts for one .py file."""
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        return [dict(file=rel, line=0, col=0, category="syntax", message=f"cannot read file: {e.strerror}")]
    try:
        code_tree = compile(source, rel, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
        # Second pass catches errors only the bytecode compiler reports
        # ('return' outside function, nonlocal at module level, ...).
        compile(code_tree, rel, "exec", dont_inherit=True)
    except SyntaxError as e:  # includes IndentationError and TabError
        return [dict(
            file=rel,
            line=e.lineno or 0,
            col=e.offset or 0,
            category="syntax",
            message=f"{type(e).__name__}: {e.msg}",
        )]
    except (ValueError, UnicodeDecodeError) as e:  # e.g. null bytes
        return [dict(file=rel, line=0, col=0, category="syntax", message=f"SyntaxError: {e}")]
    except (RecursionError, MemoryError):
        return [dict(file=rel, line=0, col=0, category="syntax",
                     message="SyntaxError: the file is too deeply nested or too large to compile")]
    if not forbidden:
        return []
    try:
        return [
        dict(file=rel, line=line, col=col + 1, category="forbidden_import", message=msg)
        for line, col, msg in sorted(set(scan_imports(code_tree, forbidden)))
        ]
    except (RecursionError, MemoryError):
        return [dict(file=rel, line=0, col=0, category="syntax",
                     message="SyntaxError: the file is too deeply nested to check")]


# Files Python could import code from without a source the check has seen.
SOURCELESS = (".pyc", ".pyo", ".zip", ".egg", ".whl", ".so", ".pyd", ".pth")


def cmd_check(args):
    t0 = time.monotonic()
    forbidden = sorted({m.strip() for m in (args.forbid or "").split(",") if m.strip()})
    files = []
    for dirpath, dirnames, filenames in os.walk(args.root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".py"):
                full = os.path.join(dirpath, name)
                files.append((full, os.path.relpath(full, args.root)))
    errors = []
    for dirpath, dirnames, filenames in os.walk(args.root):
        for name in sorted(filenames):
            if name.endswith(SOURCELESS):
                rel = os.path.relpath(os.path.join(dirpath, name), args.root)
                errors.append(dict(file=rel, line=0, col=0, category="forbidden_import",
                                   message=f"compiled or archived code ({name.rsplit('.', 1)[-1]}) is not allowed: submit Python sources"))
    for full, rel in files:
        errs = check_file(full, rel, forbidden)
        errors.extend(errs)
        for e in errs:
            print(f"{e['file']}:{e['line']}:{e['col']}: {e['message']}", file=sys.stderr)
    ok = not errors
    if not files:
        message = "no Python files found"
    elif ok:
        message = f"{len(files)} Python file(s) passed the checks"
    else:
        n_syn = sum(e["category"] == "syntax" for e in errors)
        n_imp = len(errors) - n_syn
        parts = []
        if n_syn:
            parts.append(f"{n_syn} syntax error(s)")
        if n_imp:
            parts.append(f"{n_imp} forbidden import(s)")
        first = errors[0]
        message = (f"{' and '.join(parts)}; first: {first['file']}:{first['line']}:{first['col']}: "
                   f"{first['message']}")
    write_json(args.out, dict(
        ok=ok, kind="sanity-python", exit_code=0 if ok else 1, message=one_line(message),
        errors=errors, elapsed_ms=int((time.monotonic() - t0) * 1000),
    ))
    return 0


# ------------------------------------------------------------- javac parsing

JAVAC_DIAG = re.compile(r"^(?P<file>.+?\.java):(?P<line>\d+): (?P<sev>error|warning): (?P<msg>.*)$")


def parse_javac(log_text, root):
    """Turn javac's default diagnostics into error dicts (errors only).
    The column comes from the caret line that follows the source line."""
    lines = log_text.splitlines()
    errors = []
    for i, line in enumerate(lines):
        m = JAVAC_DIAG.match(line)
        if not m or m.group("sev") != "error":
            continue
        col = 0
        for j in range(i + 1, min(i + 4, len(lines))):
            stripped = lines[j].rstrip()
            if stripped.endswith("^") and set(stripped) <= {" ", "\t", "^"}:
                col = len(stripped)  # caret position, 1-based
                break
            if JAVAC_DIAG.match(lines[j]):
                break
        path = m.group("file")
        rel = os.path.relpath(path, root) if os.path.isabs(path) else path
        errors.append(dict(file=rel, line=int(m.group("line")), col=col,
                           category="compile", message=m.group("msg")))
    return errors


# ------------------------------------------------------ failed-job summaries

PY_COMPILE_ERROR = re.compile(r"^(SyntaxError|IndentationError|TabError): .*")


PY_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')


def _py_location(frames):
    """'mapper.py, line 5' from the last 'File "...", line N' of a traceback."""
    for line in reversed(frames):
        m = PY_FRAME.match(line)
        if m:
            f = m.group("file")
            if not f.startswith("/job/") or not os.path.isfile(f) or ".." in f:
                continue  # only files of the submission: the rest could be anything
            return f"{f[len('/job/'):]}, line {m.group('line')}"
    return None


# Everything in a job's stderr is the student's to write, so feedback keeps
# only what cannot carry the hidden input: a known exception type, the
# guard's exact refusal messages, a file of the submission and a line number.
JAVA_EXCEPTIONS = {
    "java.lang." + n for n in (
        "NullPointerException", "ArrayIndexOutOfBoundsException", "StringIndexOutOfBoundsException",
        "IndexOutOfBoundsException", "NumberFormatException", "ClassNotFoundException", "OutOfMemoryError",
        "StackOverflowError", "IllegalArgumentException", "IllegalStateException", "ClassCastException",
        "ArithmeticException", "UnsupportedOperationException", "NoSuchMethodException", "NoSuchMethodError",
        "NoClassDefFoundError", "NoSuchFieldError", "RuntimeException", "Exception", "Error",
        "InterruptedException", "NegativeArraySizeException", "ArrayStoreException", "SecurityException",
        "InstantiationException", "IllegalAccessException", "ExceptionInInitializerError", "AbstractMethodError",
        "IncompatibleClassChangeError", "VerifyError", "UnsatisfiedLinkError", "LinkageError")
} | {"java.io.IOException", "java.io.FileNotFoundException", "java.io.UncheckedIOException",
     "java.util.NoSuchElementException", "java.util.ConcurrentModificationException",
     "java.util.InputMismatchException", "org.apache.hadoop.mapred.FileAlreadyExistsException",
     "org.apache.hadoop.mapreduce.lib.input.InvalidInputException"}


def _guard_messages():
    """The exact messages guard.py raises, for the modules it may refuse."""
    try:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import guard
    except ImportError:
        return set()
    finally:
        sys.path.pop(0)
    mods = set(guard.ALWAYS) | {m for v in guard.C_CORES.values() for m in v} | set(guard.C_CORES)
    mods |= set(GUARD_FORBID)
    msgs = {f"Forbidden: gradeflow: forbidden module '{m}' imported" for m in mods}
    msgs |= {"Forbidden: gradeflow: the import system was tampered with",
             "Forbidden: gradeflow: process memory is not accessible"}
    for e in ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
              "subprocess.Popen", "pty.spawn", "socket.__new__", "socket.connect", "ctypes.dlopen",
              "sys.addaudithook", "code.__new__", "function.__new__", "object.__delattr__"):
        msgs.add(f"Forbidden: gradeflow: {e} is not allowed in a submission")
    return msgs


GUARD_FORBID = []  # the assignment's forbidden modules, from --forbid


def _py_error(line):
    """A Python error line reduced to what may be shown."""
    line = line.strip()
    if line in _guard_messages():
        return line
    name = line.split(":", 1)[0].strip()
    import builtins
    v = getattr(builtins, name, None)
    if isinstance(v, type) and issubclass(v, BaseException):
        return name
    return "an exception"


def _java_error(line):
    name = line.split(":", 1)[0].strip()
    return name if name in JAVA_EXCEPTIONS else "a Java exception"


def summarise_failure(log_text):
    """One-line reason a Hadoop job failed, from its captured stderr: the
    student's first Python error (traceback's last line, or a SyntaxError
    report), else the Java exception, else streaming's 'subprocess failed
    with code N'."""
    lines = log_text.splitlines()
    py = where = None
    for i, line in enumerate(lines):
        if PY_COMPILE_ERROR.match(line):
            py = line.strip()
            where = _py_location(lines[max(0, i - 4):i])
            break
        if line.startswith("Traceback (most recent call last):"):
            for j in range(i + 1, len(lines)):
                if lines[j] and not lines[j].startswith((" ", "\t")):
                    py = lines[j].strip()
                    where = _py_location(lines[i + 1:j])
                    break
            break
    sub = None
    for line in lines:
        m = re.search(r"subprocess failed with code (\d+)", line)
        if m:
            sub = f"subprocess failed with code {m.group(1)}"
            break
    if py:
        py = _py_error(py)
        extra = "; ".join(x for x in (where, sub) if x)
        return f"{py} ({extra})" if extra else py
    # Java: the deepest "Caused by:" of the first stack trace, else the first
    # exception line.
    java = None
    for line in lines:
        s = line.strip()
        if s.startswith("Caused by: "):
            java = s[len("Caused by: "):]
        elif java and s.startswith("at "):
            continue
        elif java:
            break
    if not java:
        for line in lines:
            s = line.strip()
            if re.match(r'^(Exception in thread "[^"]*" )?[a-z][\w$]*(\.[\w$]+)+(Exception|Error)\b', s):
                java = s
                break
    if java:
        java = _java_error(re.sub(r'^Exception in thread "[^"]*" ', "", java))
    if sub and java and "subprocess failed" in java:
        return sub
    return java or sub or ""


# -------------------------------------------------------------------- result


def cmd_result(args):
    GUARD_FORBID[:] = [m for m in args.forbid.split(",") if m]
    errors = []
    if args.errors_from_javac:
        with open(args.errors_from_javac, encoding="utf-8", errors="replace") as f:
            errors = parse_javac(f.read(), args.root)
    message = args.message
    if args.message_file:
        with open(args.message_file, encoding="utf-8", errors="replace") as f:
            raw = f.read()
        if args.raw_message:
            # compile-java failure: javac's own output, newlines kept, ~4 KB.
            message = raw[:4096] if len(raw) <= 4096 else raw[:4093] + "..."
        else:
            why = summarise_failure(raw)
            if why:
                message = f"{message}: {why}"
    if not args.raw_message:
        message = one_line(message, 1024)
    obj = dict(ok=args.ok, kind=args.kind, exit_code=args.exit_code, message=message,
               errors=errors, elapsed_ms=args.elapsed_ms)
    if args.timed_out:
        obj["timed_out"] = True
    write_json(args.out, obj)
    return 0


def cmd_jarcheck(args):
    try:
        with zipfile.ZipFile(args.jar) as z:
            names = set(z.namelist())
            bad = z.testzip()
            if bad:
                print(f"corrupt entry {bad} in jar", file=sys.stderr)
                return 1
            main = None
            if "META-INF/MANIFEST.MF" in names:
                for line in z.read("META-INF/MANIFEST.MF").decode("utf-8", "replace").splitlines():
                    if line.lower().startswith("main-class:"):
                        main = line.split(":", 1)[1].strip()
    except (OSError, zipfile.BadZipFile) as e:
        print(f"not a valid jar: {e}", file=sys.stderr)
        return 1
    if args.main_class and args.main_class.replace(".", "/") + ".class" not in names:
        print(f"class {args.main_class} not found in jar", file=sys.stderr)
        return 1
    if args.manifest_out:
        with open(args.manifest_out, "w") as f:
            f.write(main or "")
    return 0


# ------------------------------------------------------- Java bytecode check

# Internal-name prefixes no submission may touch at all.
JAVA_CLASSES = (
    "java/lang/ProcessBuilder", "java/lang/ProcessHandle", "java/lang/reflect/",
    "java/lang/ClassLoader", "java/net/Socket", "java/net/ServerSocket", "java/net/DatagramSocket",
    "java/net/MulticastSocket", "java/net/URLConnection", "java/net/HttpURLConnection",
    "java/net/URLClassLoader", "java/net/http/", "java/nio/channels/SocketChannel",
    "java/nio/channels/ServerSocketChannel", "java/nio/channels/DatagramChannel",
    "java/nio/channels/AsynchronousSocketChannel", "java/nio/channels/AsynchronousServerSocketChannel",
    "java/lang/instrument/", "javax/script/", "javax/tools/", "sun/", "jdk/", "com/sun/",
    "org/apache/hadoop/util/Shell", "org/apache/hadoop/util/RunJar", "java/security/SecureClassLoader",
)
# (class, method) pairs; "*" is every method of the class.
JAVA_METHODS = {
    "java/lang/Runtime": {"exec", "load", "loadLibrary", "halt"},
    "java/lang/System": {"load", "loadLibrary", "setSecurityManager", "mapLibraryName"},
    "java/lang/Class": {"forName", "getDeclaredMethod", "getDeclaredMethods", "getMethod", "getMethods",
                        "getDeclaredField", "getDeclaredFields", "getField", "getFields",
                        "getDeclaredConstructor", "getDeclaredConstructors", "getConstructor",
                        "getConstructors", "newInstance", "getClassLoader", "getModule"},
    "java/lang/Module": {"*"},
    "java/lang/ModuleLayer": {"*"},
    "java/lang/invoke/MethodHandles": {"*"},
    "java/lang/invoke/MethodHandles$Lookup": {"*"},
    "java/lang/invoke/MethodHandle": {"*"},
    "java/lang/invoke/VarHandle": {"*"},
    "java/lang/Thread": {"getContextClassLoader", "setContextClassLoader"},
    "java/net/URL": {"openConnection", "openStream", "getContent"},
    "org/apache/hadoop/conf/Configuration": {"getClassByName", "getClassByNameOrNull", "setClassLoader", "getClassLoader"},
    "org/apache/hadoop/util/ReflectionUtils": {"*"},
}


def _class_refs(data):
    """(class names, (class, method) pairs) a class file refers to, from its
    constant pool; raises ValueError on a malformed file."""
    if data[:4] != b"\xca\xfe\xba\xbe":
        raise ValueError("not a class file")
    count = struct.unpack_from(">H", data, 8)[0]
    pos, i = 10, 1
    utf8, classes, refs, nats = {}, {}, [], {}
    sizes = {3: 4, 4: 4, 5: 8, 6: 8, 7: 2, 8: 2, 9: 4, 10: 4, 11: 4, 12: 4, 15: 3, 16: 2, 17: 4, 18: 4, 19: 2, 20: 2}
    while i < count:
        tag = data[pos]
        if tag == 1:
            n = struct.unpack_from(">H", data, pos + 1)[0]
            utf8[i] = data[pos + 3:pos + 3 + n].decode("utf-8", "replace")
            pos += 3 + n
        elif tag in sizes:
            body = data[pos + 1:pos + 1 + sizes[tag]]
            if len(body) != sizes[tag]:
                raise ValueError("truncated constant pool")
            if tag == 7:
                classes[i] = struct.unpack(">H", body)[0]
            elif tag in (10, 11):
                refs.append(struct.unpack(">HH", body))
            elif tag == 12:
                nats[i] = struct.unpack(">HH", body)
            pos += 1 + sizes[tag]
            if tag in (5, 6):
                i += 1
        else:
            raise ValueError(f"bad constant tag {tag}")
        i += 1
    names = {utf8.get(v, "") for v in classes.values()}
    methods = set()
    for cls, nat in refs:
        methods.add((utf8.get(classes.get(cls), ""), utf8.get(nats.get(nat, (0, 0))[0], "")))
    return names, methods


def _element(name):
    """The class an array descriptor is of: [[Ljava/lang/X; -> java/lang/X."""
    name = name.lstrip("[")
    return name[1:-1] if name.startswith("L") and name.endswith(";") else name


def scan_jar(path, forbid):
    """Forbidden uses in a jar, as 'Class: what' strings."""
    extra = tuple(f.strip().replace(".", "/") for f in forbid if "." in f.strip() or f.strip()[:1].isupper())
    found = []
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.filename.endswith(".class"):
                if info.filename.endswith((".jar", ".so", ".dll", ".dylib", ".jnilib")):
                    found.append(f"{info.filename}: nested jars and native libraries are not allowed")
                continue
            if info.file_size > 8 << 20:
                found.append(f"{info.filename}: class file over 8 MiB")
                continue
            where = info.filename[:-len(".class")].replace("/", ".")
            try:
                names, methods = _class_refs(z.read(info))
            except (ValueError, IndexError, struct.error) as e:
                found.append(f"{where}: unreadable class file ({e})")
                continue
            for n in sorted(names):
                c = _element(n)
                if c.startswith(JAVA_CLASSES) or (extra and c.startswith(extra)):
                    found.append(f"{where}: uses {c.replace('/', '.')}")
            for cls, meth in sorted(methods):
                c = _element(cls)
                banned = JAVA_METHODS.get(c, ())
                if "*" in banned or meth in banned:
                    found.append(f"{where}: calls {c.replace('/', '.')}.{meth}")
    return found


def cmd_bytecode(args):
    forbid = [m for m in (args.forbid or "").split(",") if m.strip()]
    try:
        found = scan_jar(args.jar, forbid)
    except (OSError, zipfile.BadZipFile) as e:
        print(f"not a valid jar: {e}", file=sys.stderr)
        return 1
    if found:
        more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
        print("forbidden API: " + "; ".join(found[:5]) + more, file=sys.stderr)
        return 1
    return 0


def cmd_mkjar(args):
    manifest = "Manifest-Version: 1.0\r\nCreated-By: gradeflow\r\n\r\n"
    with zipfile.ZipFile(args.jar, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("META-INF/MANIFEST.MF", manifest)
        for dirpath, dirnames, filenames in os.walk(args.classdir):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                if os.path.islink(full) or not os.path.isfile(full):
                    continue
                z.write(full, os.path.relpath(full, args.classdir))
    return 0


def cmd_tee(args):
    limit = args.limit
    kept = 0
    err = sys.stderr.buffer
    with open(args.file, "wb") as keep:
        while True:
            chunk = sys.stdin.buffer.read1(65536)
            if not chunk:
                break
            try:
                err.write(chunk)
                err.flush()
            except OSError:
                pass
            if kept < limit:
                keep.write(chunk[: limit - kept])
                kept += min(len(chunk), limit - kept)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("check")
    c.add_argument("--root", default="/job")
    c.add_argument("--forbid", default="")
    c.add_argument("--out", required=True)
    c.set_defaults(fn=cmd_check)

    r = sub.add_parser("result")
    r.add_argument("--kind", required=True)
    r.add_argument("--ok", action="store_true")
    r.add_argument("--exit-code", type=int, required=True)
    r.add_argument("--elapsed-ms", type=int, required=True)
    r.add_argument("--message", default="")
    r.add_argument("--message-file", help="captured stderr to summarise (or raw javac log)")
    r.add_argument("--raw-message", action="store_true", help="use --message-file verbatim (4 KB)")
    r.add_argument("--errors-from-javac")
    r.add_argument("--root", default="/job")
    r.add_argument("--timed-out", action="store_true")
    r.add_argument("--forbid", default="", help="the assignment's forbidden modules (to recognise guard messages)")
    r.add_argument("--out", required=True)
    r.set_defaults(fn=cmd_result)

    j = sub.add_parser("jarcheck")
    j.add_argument("jar")
    j.add_argument("--main-class")
    j.add_argument("--manifest-out")
    j.set_defaults(fn=cmd_jarcheck)

    m = sub.add_parser("mkjar")
    m.add_argument("classdir")
    m.add_argument("jar")
    m.set_defaults(fn=cmd_mkjar)

    b = sub.add_parser("bytecode")
    b.add_argument("jar")
    b.add_argument("--forbid", default="")
    b.set_defaults(fn=cmd_bytecode)

    t = sub.add_parser("tee")
    t.add_argument("file")
    t.add_argument("limit", type=int)
    t.set_defaults(fn=cmd_tee)

    args = p.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
