#!/usr/bin/env python3
"""guard.py: run-time enforcement for student code in the gradeflow sandbox.

  guard.py run [--forbid a,b] FILE [ARGS...]
      Run a student's Python mapper/reducer/combiner FILE (as `python3 FILE`
      would) after locking the interpreter down:
        1. a seccomp filter (kernel-enforced, inherited, cannot be lifted):
           no new processes (fork, vfork, clone without CLONE_THREAD, clone3,
           execve, execveat), no sockets, no ptrace or process_vm_* access;
        2. an audit hook (cannot be removed from Python) that refuses the
           same operations at the Python level with a clear error, plus
           ctypes, and imports of the assignment's forbidden modules and
           their C cores (_socket, _posixsubprocess, _ctypes, ...);
        3. an import path that loads only .py sources from the submission:
           no sourceless .pyc, no __pycache__, no zip archives, no native
           extensions outside the standard library.
  guard.py exec -- CMD [ARGS...]
      Exec CMD (the Hadoop JVM of a Java submission) under a seccomp filter
      that forbids creating processes, sockets and ptrace; threads and the
      exec of CMD itself stay allowed.
Run it as `python3 -I -S guard.py ...`.
"""
import ctypes
import os
import struct
import sys

# ------------------------------------------------------------------ seccomp

# (audit arch, {name: number}) for the architectures the image runs on.
_ARCHES = {
    "x86_64": (0xC000003E, dict(
        socket=41, connect=42, accept=43, bind=49, listen=50, socketpair=53, accept4=288,
        clone=56, fork=57, vfork=58, execve=59, execveat=322, clone3=435,
        ptrace=101, process_vm_readv=310, process_vm_writev=311, pidfd_getfd=438)),
    "aarch64": (0xC00000B7, dict(
        socket=198, connect=203, accept=202, bind=200, listen=201, socketpair=199, accept4=242,
        clone=220, execve=221, execveat=281, clone3=435,
        ptrace=117, process_vm_readv=270, process_vm_writev=271, pidfd_getfd=438)),
}
_DENY_NET = ("socket", "connect", "accept", "bind", "listen", "socketpair", "accept4")
_DENY_TRACE = ("ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd")
_DENY_EXEC = ("execve", "execveat")
_DENY_FORK = ("fork", "vfork")

EPERM, ENOSYS = 1, 38
CLONE_THREAD = 0x00010000
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
RET_ALLOW, RET_ERRNO, RET_KILL = 0x7FFF0000, 0x00050000, 0x80000000  # KILL_PROCESS
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06


def _filter(deny_exec):
    """BPF program: kill foreign arches/ABIs, EPERM the denied syscalls,
    ENOSYS for clone3 (libc falls back to clone, whose flags we can check),
    allow clone only for threads. For a JVM (deny_exec False), local
    AF_UNIX sockets and socket pairs stay allowed (NIO needs a socket pair);
    there is no network in the sandbox either way."""
    machine = os.uname().machine
    if machine not in _ARCHES:
        raise OSError(f"guard: no seccomp table for {machine}")
    arch, nr = _ARCHES[machine]
    prog = [(LD_W_ABS, 0, 0, 4), (JEQ_K, 1, 0, arch), (RET_K, 0, 0, RET_KILL), (LD_W_ABS, 0, 0, 0)]
    if machine == "x86_64":  # x32 ABI numbers
        prog += [(JGE_K, 0, 1, 0x40000000), (RET_K, 0, 0, RET_KILL)]
    net = _DENY_NET if deny_exec else tuple(n for n in _DENY_NET if n not in ("socket", "socketpair"))
    names = net + _DENY_TRACE + _DENY_FORK + (_DENY_EXEC if deny_exec else ())
    for name in names:
        if name in nr:
            prog += [(JEQ_K, 0, 1, nr[name]), (RET_K, 0, 0, RET_ERRNO | EPERM)]
    if not deny_exec:  # socket(domain, ...): AF_UNIX (1) only
        prog += [
            (JEQ_K, 0, 4, nr["socket"]),
            (LD_W_ABS, 0, 0, 16),
            (JEQ_K, 1, 0, 1),
            (RET_K, 0, 0, RET_ERRNO | EPERM),
            (RET_K, 0, 0, RET_ALLOW),
            (LD_W_ABS, 0, 0, 0),  # not socket: reload the syscall number
        ]
    prog += [(JEQ_K, 0, 1, nr["clone3"]), (RET_K, 0, 0, RET_ERRNO | ENOSYS)]
    prog += [
        (JEQ_K, 0, 4, nr["clone"]),
        (LD_W_ABS, 0, 0, 16),  # low word of args[0], the flags (little endian)
        (JSET_K, 0, 1, CLONE_THREAD),
        (RET_K, 0, 0, RET_ALLOW),
        (RET_K, 0, 0, RET_ERRNO | EPERM),
    ]
    prog.append((RET_K, 0, 0, RET_ALLOW))
    return prog


def install_seccomp(deny_exec):
    prog = _filter(deny_exec)
    raw = b"".join(struct.pack("<HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "guard: prctl(NO_NEW_PRIVS)")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "guard: prctl(SECCOMP)")


# ------------------------------------------------------------ Python policy

# C modules behind forbidden modules: forbidding the module forbids its core.
C_CORES = {
    "socket": ("_socket", "select", "_ssl"),
    "subprocess": ("_posixsubprocess", "select"),
    "multiprocessing": ("_multiprocessing", "_posixshmem", "_posixsubprocess"),
    "ctypes": ("_ctypes",),
    "asyncio": ("_asyncio", "_socket"),
    "urllib": ("_socket",),
    "http": ("_socket",),
    "ssl": ("_ssl", "_socket"),
    "os": ("posix",),
}
# Always refused, whatever the assignment says: they exist only to reach
# processes, the network or raw memory, which the sandbox does not offer.
ALWAYS = ("_posixsubprocess", "_ctypes", "ctypes", "_socket", "socket", "pty", "_xxsubinterpreters")
# Audit events refused at the Python level (the seccomp filter backs most).
DENY_EVENTS = (
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "subprocess.Popen", "pty.spawn", "ctypes.", "socket.", "sys.addaudithook",
    "os.add_dll_directory", "sys.unraisablehook", "cpython.run_", "cpython.remote_debugger",
    "code.__new__", "function.__new__", "object.__delattr__",
)


class Forbidden(PermissionError):
    """A forbidden operation (subclass of PermissionError)."""


def _matches(name, banned):
    for b in banned:
        if name == b or name.startswith(b + "."):
            return b
    return None


EXTRA_SITE = "/opt/gradeflow/python"


def install_policy(forbid, job_dir):
    import importlib.machinery as mach

    banned = set(ALWAYS)
    for mod in forbid:
        banned.add(mod)
        banned.update(C_CORES.get(mod.split(".")[0], ()))
    banned = tuple(sorted(banned))

    stdlib = tuple(p for p in sys.path if p.startswith(sys.base_prefix))
    # A runtime image may add packages here (docker/image/extra): trusted
    # like the standard library, since the image's builder put them there.
    if os.path.isdir(EXTRA_SITE):
        stdlib += (EXTRA_SITE,)

    class SourceOnlyLoader(mach.SourceFileLoader):
        """Compiles the .py file every time: a planted __pycache__ is never read."""

        def get_code(self, fullname):
            path = self.get_filename(fullname)
            return self.source_to_code(self.get_data(path), path)

    std_hook = mach.FileFinder.path_hook(
        (mach.ExtensionFileLoader, mach.EXTENSION_SUFFIXES),
        (mach.SourceFileLoader, mach.SOURCE_SUFFIXES),
        (mach.SourcelessFileLoader, mach.BYTECODE_SUFFIXES))
    job_hook = mach.FileFinder.path_hook((SourceOnlyLoader, [".py"]))

    def path_hook(path):
        if path.startswith(stdlib):
            return std_hook(path)
        if os.path.isdir(path):
            return job_hook(path)
        raise ImportError(f"gradeflow: not an importable directory: {path}")

    class Refuse:
        """First meta-path finder: refuses forbidden names on every import
        path, importlib.import_module included."""

        @staticmethod
        def find_spec(name, path=None, target=None):
            b = _matches(name, banned)
            if b:
                raise Forbidden(f"gradeflow: forbidden module '{name}' imported")
            return None

    sys.path[:] = [job_dir] + list(stdlib)
    sys.path_hooks[:] = [path_hook]
    sys.path_importer_cache.clear()
    sys.meta_path.insert(0, Refuse)
    sys.pycache_prefix = None
    for name in list(sys.modules):  # loaded before the policy: hide them
        if _matches(name, banned):
            del sys.modules[name]
    meta, hooks = list(sys.meta_path), list(sys.path_hooks)

    def audit(event, args):
        if event == "import":
            name = args[0]
            if _matches(name, banned):
                raise Forbidden(f"gradeflow: forbidden module '{name}' imported")
            if sys.meta_path != meta or sys.path_hooks != hooks:
                raise Forbidden("gradeflow: the import system was tampered with")
            return
        for d in DENY_EVENTS:
            if event.startswith(d):
                raise Forbidden(f"gradeflow: {event} is not allowed in a submission")
        if event == "open" and isinstance(args[0], str) and args[0].startswith("/proc/") and args[0].endswith("/mem"):
            raise Forbidden("gradeflow: process memory is not accessible")

    sys.addaudithook(audit)


def run(argv):
    forbid = []
    while argv and argv[0].startswith("--forbid"):
        opt = argv.pop(0)
        val = opt.split("=", 1)[1] if "=" in opt else argv.pop(0)
        forbid += [m.strip() for m in val.split(",") if m.strip()]
    if not argv:
        sys.exit("usage: guard.py run [--forbid a,b] FILE [ARGS...]")
    path = os.path.abspath(argv[0])
    with open(path, "rb") as f:
        source = f.read()
    install_seccomp(deny_exec=True)
    for name in [m for m in sys.modules if m == "ctypes" or m.startswith("ctypes.") or m == "_ctypes"]:
        del sys.modules[name]
    install_policy(forbid, os.path.dirname(path))
    import types
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    sys.argv[:] = argv
    code = compile(source, path, "exec", dont_inherit=True)
    exec(code, main.__dict__)


def exec_cmd(argv):
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.exit("usage: guard.py exec -- CMD [ARGS...]")
    install_seccomp(deny_exec=False)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "run":
        del sys.argv[0]  # the student's file becomes argv[0]
        del sys.argv[0]
        run(sys.argv)
    elif len(sys.argv) >= 2 and sys.argv[1] == "exec":
        exec_cmd(sys.argv[2:])
    else:
        sys.exit(__doc__)
