"""The interpreter of the emulated shell: runs the syntax tree against a RootFS with byte-buffer pipes."""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable, Mapping, Sequence

from minibuild.errors import ShellError, UnsupportedCommandError
from minibuild.fs.userdb import read_db
from minibuild.limits import RunLimits
from minibuild.sh import expand, shellbuiltins
from minibuild.sh.ast import AndOr, Case, For, FuncDef, Group, If, Node, Pipeline, Redirect, Seq, Simple, Subshell, While
from minibuild.sh.builtins.base import REGISTRY, Ctx, UsageError
from minibuild.sh.control import ExitShell, LoopCtl, ReturnFn
from minibuild.sh.expand import ExpansionError
from minibuild.sh.fs import RANDOM_DEVICES, RootFS, vnorm
from minibuild.sh.names import ACCOUNT_TOOLS, ASH_BUILTINS, DEFAULT_PATH, SHELLS, SPECIAL, missing_hint
from minibuild.sh.parser import parse
from minibuild.sh.pattern import fullmatch
from minibuild.sh.streams import Buffer, DirectoryInput, FileOut, Input, Null, Stream, dec, enc

# (shell, script path in the root, argv, env, stdin, stdout, stderr) -> exit status, or None: run the script
ExecHook = Callable[["Shell", str, list[str], Mapping[str, str], Stream, Stream, Stream], "int | None"]


class Shell:
    """One shell execution environment (a subshell is a copy made by `fork`)."""

    def __init__(self, fs: RootFS, env: Mapping[str, str], *, cwd: str = "/", args: Sequence[str] = (),
                 arg0: str = "sh", source_date_epoch: int = 0, limits: RunLimits | None = None,
                 deadline: float | None = None) -> None:
        self.fs = fs
        self.limits = limits if limits is not None else RunLimits()
        self.deadline = deadline  # time.monotonic() value at which the RUN must have ended (None = no limit)
        self.vars: dict[str, str] = dict(env)
        self.exported: set[str] = set(env)
        self.functions: dict[str, Node] = {}
        self.positional: list[str] = list(args)
        self.arg0 = arg0
        self.options: dict[str, bool] = {}
        self.cwd = vnorm(cwd)
        self.status = 0
        self.fds: dict[int, Stream] = {0: Input(b""), 1: Buffer(), 2: Buffer()}
        self.suppress = 0
        self.exempt = False
        self.locals: list[dict[str, str | None]] = []
        self.loop_depth = 0
        self.source_date_epoch = source_date_epoch
        self.steps = [0]
        self.readonly: set[str] = set()
        self.missing: list[str] = []  # a hint per command it could not run (shared by subshells and children)
        self.depth = 0
        self.lineno = 1  # the script line of the command running (busybox's messages say `line N-1`)
        self.subst_status: int | None = None
        self.traps: dict[str, str] = {}
        self.exec_hook: ExecHook | None = None  # consulted before a script of the root runs (minibuild run)
        self.vars.setdefault("IFS", " \t\n")
        self.vars.setdefault("PWD", self.cwd)
        self.vars.setdefault("PPID", "1")
        self.vars.setdefault("OPTIND", "1")

    def start_shell(self) -> None:
        """What a shell sets up as it starts (busybox ash and bash alike): SHLVL one more than the environment's
        (1 when unset or not a number), PWD the working directory unless the environment's names the same one;
        both exported."""
        level = self.vars.get("SHLVL", "")
        self.vars["SHLVL"] = str(int(level) + 1 if level.strip().lstrip("-").isdigit() else 1)
        pwd = self.vars.get("PWD", "")
        try:
            same = pwd.startswith("/") and self.fs.resolve(pwd) == self.fs.resolve(self.cwd)
        except OSError:
            same = False
        self.vars["PWD"] = vnorm(pwd) if same else self.cwd
        self.exported.update(("SHLVL", "PWD"))

    # ----- variables
    def get(self, name: str) -> str | None:
        if name.isdigit():
            i = int(name)
            if i == 0:
                return self.arg0
            return self.positional[i - 1] if i <= len(self.positional) else None
        match name:
            case "?":
                return str(self.status)
            case "#":
                return str(len(self.positional))
            case "@" | "*":
                return " ".join(self.positional)
            case "$":
                return "1"
            case "!":
                return ""
            case "-":
                return "".join(f for f, o in (("e", "errexit"), ("u", "nounset"), ("x", "xtrace"), ("f", "noglob")) if self.options.get(o))
        return self.vars.get(name)

    def set_var(self, name: str, value: str, *, who: str = "") -> None:
        """Assign a variable; a readonly one is busybox's fatal error (`who` names the builtin that tried)."""
        if name in self.readonly:
            raise ExpansionError(f"sh: {who + f': line {self.lineno - 1}: ' if who else ''}{name}: is read only")
        if len(value) > self.limits.max_bytes:
            raise ShellError("sh: " + self.limits.bytes_message(f"the value of variable {name}"))
        self.vars[name] = value
        if self.options.get("allexport"):
            self.exported.add(name)

    def ifs(self) -> str:
        v = self.vars.get("IFS")
        return " \t\n" if v is None else v

    def environ(self) -> dict[str, str]:
        return {k: self.vars[k] for k in sorted(self.exported) if k in self.vars}

    def user_home(self, user: str) -> str | None:
        try:
            rows = read_db(self.fs.root, "/etc/passwd", error=UsageError)
        except UsageError:
            return None  # a FIFO, device or oversized passwd: ~user stays as written
        return next((f[5] for f in rows if len(f) >= 6 and f[0] == user), None)

    # ----- process-like copies
    def fork(self) -> "Shell":
        child = Shell.__new__(Shell)
        child.fs = self.fs
        child.limits = self.limits
        child.deadline = self.deadline
        child.vars = dict(self.vars)
        child.exported = set(self.exported)
        child.functions = dict(self.functions)
        child.positional = list(self.positional)
        child.arg0 = self.arg0
        child.options = dict(self.options)
        child.cwd = self.cwd
        child.status = self.status
        child.fds = dict(self.fds)
        child.suppress = self.suppress
        child.exempt = False
        child.locals = []
        child.loop_depth = 0
        child.source_date_epoch = self.source_date_epoch
        child.steps = self.steps
        child.readonly = set(self.readonly)
        child.missing = self.missing
        child.depth = self.depth + 1
        child.lineno = self.lineno
        child.subst_status = None
        child.traps = {}
        child.exec_hook = self.exec_hook
        if child.depth > self.limits.max_depth:
            raise ShellError("sh: " + self.limits.depth_message())
        return child

    def run_subshell(self, node: Node) -> int:
        return self.fork()._run_forked(node)

    def run_exit_trap(self, code: int) -> int:
        action = self.traps.pop("EXIT", None)
        if action:
            self.status = code
            try:
                self.execute(parse(action))
            except ExitShell as e:
                return e.code
        return code

    def command_subst(self, body: Node) -> str:
        child = self.fork()
        buf = self.memory_buffer("the output of $(...)")
        child.fds[1] = buf
        try:
            child.execute(body)
            code = child.status
        except ExitShell as e:
            code = e.code
        except (ReturnFn, LoopCtl):
            code = child.status
        except ExpansionError as e:
            child.err(e.message)
            code = 2
        code = child.run_exit_trap(code)
        self.subst_status = code
        return dec(buf.getvalue())

    def err(self, msg: str) -> None:
        self.fds.get(2, Null()).write(enc(msg.rstrip("\n") + "\n"))

    def memory_buffer(self, what: str) -> Buffer:
        """A Buffer for data the shell holds in memory (a pipe, a $(...)), bounded by the memory limit."""
        return Buffer(self.limits.max_bytes, what, self.limits.bytes_message)

    def check_time(self) -> None:
        """Raise ShellError once the RUN's wall-time limit has passed (builtins call it in their loops)."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ShellError("sh: " + self.limits.timeout_message())

    # ----- execution
    def run_script(self, text: str) -> int:
        """Parse and run a whole script; returns the exit status (syntax errors give 2).

        As ash reads a script a line at a time, the complete commands before a syntax error run first."""
        syntax: ShellError | None = None
        tree: Node | None
        try:
            tree = parse(text)
        except ShellError as e:
            syntax = e
            tree = self._before_syntax_error(text, e)

        def run() -> int:
            if tree is not None:
                self.execute(tree)
            if syntax is not None:
                self.err(re.sub(r"^sh: line \d+: ", "sh: ", syntax.message))
                return 2
            return self.status

        return self.run_exit_trap(self._ended(run))

    def _ended(self, run: Callable[[], int]) -> int:
        """The status `run` gives, or the one an exit, return, break/continue or expansion error ends it with."""
        try:
            return run()
        except (ExitShell, ReturnFn) as e:
            return e.code
        except LoopCtl:
            return self.status
        except ExpansionError as e:
            self.err(e.message)
            return 2

    @staticmethod
    def _before_syntax_error(text: str, e: ShellError) -> Node | None:
        """The longest run of whole lines before the error's line that parses: what ash has run by then."""
        m = re.match(r"sh: line (\d+):", e.message)
        if not m:
            return None
        lines = text.split("\n")
        for k in range(min(int(m.group(1)) - 1, len(lines)), max(int(m.group(1)) - 200, 0), -1):
            try:
                return parse("\n".join(lines[:k]))
            except ShellError:
                continue
        return None

    def execute(self, node: Node) -> None:
        self.steps[0] += 1
        if self.steps[0] > self.limits.max_commands:
            raise ShellError(f"sh: the script ran more than {self.limits.max_commands} commands (endless loop or "
                             f"fork bomb?)")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ShellError("sh: " + self.limits.timeout_message())
        match node:
            case Seq():
                for item in node.items:
                    self.execute(item)
            case AndOr():
                self.run_and_or(node)
            case Pipeline():
                self.run_pipeline(node)
            case Simple():
                self.run_simple(node)
            case Subshell():
                self.with_redirects(node.redirects, lambda: self._set(self.run_subshell(node.body)))
            case Group():
                self.with_redirects(node.redirects, lambda: self.execute(node.body))
            case If():
                self.with_redirects(node.redirects, lambda: self.run_if(node))
            case For():
                self.with_redirects(node.redirects, lambda: self.run_for(node))
            case While():
                self.with_redirects(node.redirects, lambda: self.run_while(node))
            case Case():
                self.with_redirects(node.redirects, lambda: self.run_case(node))
            case FuncDef():
                self.functions[node.name] = node.body
                self.status = 0
            case _:
                raise ShellError(f"sh: cannot run {type(node).__name__}")

    def _set(self, code: int) -> None:
        self.status = code

    def cond(self, seq: Seq) -> int:
        self.suppress += 1
        try:
            self.execute(seq)
        finally:
            self.suppress -= 1
        return self.status

    def run_and_or(self, node: AndOr) -> None:
        items = [("", node.first), *node.rest]
        last = len(items) - 1
        ran = 0
        for i, (op, pipe) in enumerate(items):
            if op == "&&" and self.status != 0:
                continue
            if op == "||" and self.status == 0:
                continue
            ran = i
            if i < last:
                self.suppress += 1
                try:
                    self.run_pipeline(pipe)
                finally:
                    self.suppress -= 1
            else:
                self.run_pipeline(pipe)
        pipe = items[ran][1]
        inherited = self.exempt and len(pipe.commands) == 1 and isinstance(pipe.commands[0], (Group, If, For, While, Case))
        if ran == last and self.status != 0 and not pipe.negate and not inherited and self.options.get("errexit") \
                and not self.suppress:
            raise ExitShell(self.status)
        # POSIX/busybox: a compound command whose failure came from an -e-exempt command does not trigger -e
        self.exempt = self.status != 0 and (ran != last or pipe.negate or inherited)

    def run_pipeline(self, node: Pipeline) -> None:
        if node.negate:
            self.suppress += 1
        try:
            if len(node.commands) == 1:
                self.execute(node.commands[0])
                code = self.status
            else:
                data: bytes | None = None
                codes: list[int] = []
                for i, cmd in enumerate(node.commands):
                    child = self.fork()
                    if data is not None:
                        child.fds[0] = Input(data)
                    buf = self.memory_buffer("the data in a pipe")
                    if i < len(node.commands) - 1:
                        child.fds[1] = buf
                    codes.append(child._run_forked(cmd))
                    data = buf.getvalue()
                code = codes[-1]
                if self.options.get("pipefail"):
                    code = next((c for c in reversed(codes) if c != 0), 0)
        finally:
            if node.negate:
                self.suppress -= 1
        self.status = (0 if code else 1) if node.negate else code

    def _run_forked(self, node: Node) -> int:
        def run() -> int:
            self.execute(node)
            return self.status

        return self.run_exit_trap(self._ended(run))

    def run_if(self, node: If) -> None:
        for cond, body in node.branches:
            if self.cond(cond) == 0:
                self.execute(body)
                return
        if node.orelse is not None:
            self.execute(node.orelse)
        else:
            self.status = 0

    def _loop_body(self, body: Seq) -> str | None:
        try:
            self.execute(body)
        except LoopCtl as e:
            if e.n > 1:
                e.n -= 1
                raise
            return e.kind
        return None

    def run_for(self, node: For) -> None:
        items = list(self.positional) if node.words is None else expand.expand_words(self, node.words)
        self.status = 0
        self.loop_depth += 1
        try:
            for item in items:
                self.set_var(node.var, item)
                if self._loop_body(node.body) == "break":
                    break
        finally:
            self.loop_depth -= 1

    def run_while(self, node: While) -> None:
        last = 0
        self.loop_depth += 1
        try:
            while True:
                c = self.cond(node.cond)
                if (c == 0) == node.until:
                    break
                self.status = last
                kind = self._loop_body(node.body)
                last = self.status
                if kind == "break":
                    break
        finally:
            self.loop_depth -= 1
        self.status = last

    def run_case(self, node: Case) -> None:
        subject = expand.expand_string(self, node.word)
        self.status = 0
        for pats, body in node.items:
            for p in pats:
                if fullmatch(expand.expand_pattern(self, p), subject):
                    self.execute(body)
                    return

    # ----- redirections
    def open_redirects(self, redirects: tuple[Redirect, ...]) -> tuple[dict[int, Stream], list[Stream]]:
        fds = dict(self.fds)
        opened: list[Stream] = []
        for r in redirects:
            if r.op == "<<":
                body = expand.expand_heredoc(self, r.heredoc) if r.heredoc is not None else ""
                if r.heredoc is not None and all(type(p).__name__ == "SQ" for p in r.heredoc.parts):
                    body = "".join(p.text for p in r.heredoc.parts)  # type: ignore[union-attr]
                fds[r.fd] = Input(enc(body))
                continue
            target = expand.expand_string(self, r.target)
            if r.op in (">&", "<&"):
                if target == "-":
                    fds.pop(r.fd, None)
                    continue
                if target.isdigit():
                    src = fds.get(int(target))
                    if src is None:
                        raise _RedirError(f"sh: {target}: Bad file descriptor")
                    fds[r.fd] = src
                    continue
                if r.op == "<&":
                    raise _RedirError(f"sh: {target}: Bad file descriptor")
            stream = self.open_target(target, r.op, fds)
            opened.append(stream)
            fds[r.fd] = stream
        return fds, opened

    def open_target(self, target: str, op: str, fds: dict[int, Stream]) -> Stream:
        special = vnorm(target, self.cwd)
        if special in ("/dev/null", "/dev/zero") or (special in RANDOM_DEVICES and op not in ("<", "<>")):
            return Null()
        if special in RANDOM_DEVICES:
            raise UnsupportedCommandError(f"sh: reading {special} is not available in the emulated shell (its bytes "
                                          f"would make the build irreproducible); use --executor chroot",
                                          command="sh")
        if special in ("/dev/stdout", "/dev/fd/1"):
            return fds.get(1, Null())
        if special in ("/dev/stderr", "/dev/fd/2"):
            return fds.get(2, Null())
        if special in ("/dev/stdin", "/dev/fd/0"):
            return fds.get(0, Null())
        try:
            host = self.fs.path(target, self.cwd)
            if op == "<" and os.path.isdir(host) and not os.path.islink(host):
                return DirectoryInput()
            if op in ("<", "<>"):
                return Input(self.fs.read_bytes(host))
            if os.path.isdir(host):
                raise IsADirectoryError(21, "Is a directory")
            return FileOut(self.fs.open_write(host, append=(op == ">>")))
        except FileNotFoundError:
            if op == "<":
                raise _RedirError(f"sh: can't open {target}: no such file") from None
            raise _RedirError(f"sh: can't create {target}: nonexistent directory") from None
        except OSError as e:
            verb = "open" if op == "<" else "create"
            raise _RedirError(f"sh: can't {verb} {target}: {e.strerror}") from None

    def with_redirects(self, redirects: tuple[Redirect, ...], fn) -> None:  # type: ignore[no-untyped-def]
        if not redirects:
            fn()
            return
        try:
            fds, opened = self.open_redirects(redirects)
        except _RedirError as e:
            self.err(str(e))
            self.status = 1
            return
        saved = self.fds
        self.fds = fds
        try:
            fn()
        finally:
            self.fds = saved
            for s in opened:
                s.close()

    # ----- simple commands
    def run_simple(self, cmd: Simple) -> None:
        self.subst_status = None
        self.lineno = cmd.line or self.lineno
        words = expand.expand_words(self, cmd.words)
        assigns = [(name, expand.expand_string(self, w)) for name, w in cmd.assigns]
        if self.options.get("xtrace"):
            shown = [f"{n}={v}" for n, v in assigns] + [_quote(w) for w in words]
            self.err("+ " + " ".join(shown))
        if not words:
            for name, value in assigns:
                self.set_var(name, value)
            code = self.subst_status if self.subst_status is not None else 0
            if cmd.redirects:
                try:
                    _fds, opened = self.open_redirects(cmd.redirects)
                    for s in opened:
                        s.close()
                except _RedirError as e:
                    self.err(str(e))
                    code = 1
            self.status = code
            return
        name = words[0]
        try:
            fds, opened = self.open_redirects(cmd.redirects)
        except _RedirError as e:
            self.err(str(e))
            self.status = 1
            return
        if name == "exec" and len(words) == 1:
            self.fds = fds
            self.status = 0
            return
        saved = self.fds
        self.fds = fds
        try:
            self.status = self.dispatch(words, assigns)
        finally:
            self.fds = saved
            for s in opened:
                s.close()

    def dispatch(self, words: list[str], assigns: list[tuple[str, str]]) -> int:
        name, args = words[0], words[1:]
        for n, _ in assigns:  # R=5 cmd with R readonly is fatal too
            if n in self.readonly:
                raise ExpansionError(f"sh: {n}: is read only")
        if name in SPECIAL and name in shellbuiltins.SHELL_BUILTINS:
            for n, v in assigns:
                self.set_var(n, v)
            return shellbuiltins.SHELL_BUILTINS[name](self, args)
        if name in self.functions:
            return self.call_function(name, args, assigns)
        if name in shellbuiltins.SHELL_BUILTINS:
            saved = {n: self.vars.get(n) for n, _ in assigns}
            for n, v in assigns:
                self.vars[n] = v
            try:
                return shellbuiltins.SHELL_BUILTINS[name](self, args)
            finally:
                for n, old in saved.items():
                    if n in ("PATH",):
                        pass
                    if old is None:
                        self.vars.pop(n, None)
                    else:
                        self.vars[n] = old
        env = self.environ()
        env.update(assigns)
        return self.run_utility(words, env=env, direct=True)

    def call_function(self, name: str, args: list[str], assigns: list[tuple[str, str]]) -> int:
        body = self.functions[name]
        saved_pos = self.positional
        saved_vars = {n: self.vars.get(n) for n, _ in assigns}
        for n, v in assigns:
            self.vars[n] = v
        self.positional = list(args)
        self.locals.append({})
        self.depth += 1
        try:
            if self.depth > self.limits.max_depth:
                raise ShellError(f"sh: {name}: " + self.limits.depth_message())
            self.execute(body)
            code = self.status
        except ReturnFn as e:
            code = e.code
        finally:
            self.depth -= 1
            scope = self.locals.pop()
            for n, old in scope.items():
                if old is None:
                    self.vars.pop(n, None)
                else:
                    self.vars[n] = old
            for n, old in saved_vars.items():
                if old is None:
                    self.vars.pop(n, None)
                else:
                    self.vars[n] = old
            self.positional = saved_pos
        return code

    def run_utility(self, argv: list[str], *, env: Mapping[str, str] | None = None, stdin: bytes | None = None,
                    stdout: Stream | None = None, stderr: Stream | None = None, direct: bool = False) -> int:
        """Run a non-shell-builtin command: an emulated utility, a shell script in the root, or `sh -c`.
        `direct`: the script's own command (not env's, xargs' or find's), where ash's builtins speak as `sh`."""
        env = dict(self.environ() if env is None else env)
        name = argv[0]
        in_ = Input(stdin) if stdin is not None else self.fds.get(0, Input(b""))
        out = stdout or self.fds.get(1, Null())
        err = stderr or self.fds.get(2, Null())
        base = name.rsplit("/", 1)[-1]
        script = self.find_script(name) if "/" in name and base not in SHELLS else None
        # a path names a file in the root: a missing one fails like exec would (Docker: RUN without /bin/sh
        # fails); a shell path that exists, even as a placeholder file or a symlink, is interpreted
        if "/" in name and script is None and (base in SHELLS or base not in REGISTRY) and not self.lexists(name):
            err.write(enc(f"sh: {name}: not found\n"))
            return 127
        if script is None and (base in SHELLS):
            return self.run_sh(argv, env, in_, out, err)
        if script is None and base in ACCOUNT_TOOLS:  # the image's own adduser/useradd has another syntax
            own = self.own_program(name, env)
            if own is not None and self.find_script(own) is not None:
                return self.run_script_file(own, argv[1:], env, in_, out, err, arg0=name)
            if own is not None:
                self.missing.append(missing_hint(name, own))
                err.write(enc(f"sh: {name}: not found\n"))
                return 127
        if script is None and base in REGISTRY:
            ctx = Ctx(shell=self, name=base, env=env, stdin=in_, stdout=out, stderr=err,
                      label="sh" if direct and name in ASH_BUILTINS else None)
            try:
                return REGISTRY[base](ctx, argv[1:])
            except UsageError as e:
                ctx.err(str(e))
                return 1
            except OSError as e:  # a builtin's unexpected file error: reported like a real tool would
                ctx.oserr(e)
                return 1
        if script is None and base in shellbuiltins.SHELL_BUILTINS and base not in SPECIAL:
            child = self.fork()
            child.fds = {0: in_, 1: out, 2: err}
            return shellbuiltins.SHELL_BUILTINS[base](child, argv[1:])
        binary = name if "/" in name else None  # an existing path the emulator cannot interpret
        if script is None and "/" not in name:
            script, binary = self.search_path(name, env)
        if script is None:  # like a shell that finds no such command: status 127, and the build says why
            self.missing.append(missing_hint(name, binary))
            err.write(enc(f"sh: {name}: not found\n"))
            return 127
        if self.exec_hook is not None:
            code = self.exec_hook(self, script, argv, env, in_, out, err)
            if code is not None:
                return code
        # the kernel hands a #! interpreter the path the PATH search found, so $0 is that path (busybox: /w/bin/t)
        return self.run_script_file(script, argv[1:], env, in_, out, err, arg0=script)

    def own_program(self, name: str, env: Mapping[str, str]) -> str | None:
        """The image's executable `name` (a path, or first on PATH) unless it is busybox (a link to it)."""
        path = env.get("PATH", self.vars.get("PATH", DEFAULT_PATH))
        cands = [name] if "/" in name else [(d or ".").rstrip("/") + "/" + name for d in path.split(":")]
        for cand in cands:
            try:
                real = self.fs.resolve(cand, self.cwd)
                st = self.fs.stat(self.fs.host(real))
            except OSError:
                continue
            if not (stat.S_ISREG(st.st_mode) and st.st_mode & 0o111):
                continue
            try:
                busybox = self.fs.stat(self.fs.path("/bin/busybox"))
            except OSError:
                busybox = None
            if real.rsplit("/", 1)[-1] == "busybox" or (busybox is not None and os.path.samestat(st, busybox)):
                return None
            return cand
        return None

    def lexists(self, p: str) -> bool:
        try:
            return os.path.lexists(self.fs.path(p, self.cwd, follow=False))
        except OSError:
            return False

    def _is_script(self, p: str) -> bool:
        return self.find_script(p) is not None

    def search_path(self, name: str, env: Mapping[str, str]) -> tuple[str | None, str | None]:
        """(shell script, None) for `name` on PATH, or (None, the binary program found first, if any)."""
        path = env.get("PATH", self.vars.get("PATH", DEFAULT_PATH))
        for d in path.split(":"):
            cand = (d or ".").rstrip("/") + "/" + name
            try:
                host = self.fs.path(cand, self.cwd)
                st = self.fs.stat(host)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
                if self.find_script(cand) is not None:
                    return cand, None
                return None, cand
        return None, None

    def find_script(self, p: str) -> str | None:
        """`p` when it is an executable shell script in the root (#!/bin/sh, bash, env sh, or no #! text)."""
        try:
            host = self.fs.path(p, self.cwd)
            st = self.fs.stat(host)
            if not stat.S_ISREG(st.st_mode):
                return None
            head = self.fs.read_bytes(host, 512)
        except OSError:
            return None
        if head.startswith(b"#!"):
            line = head[2:].split(b"\n", 1)[0].strip().split()
            if not line:
                return p
            interp = line[0].rsplit(b"/", 1)[-1].decode(errors="replace")
            if interp == "env" and len(line) > 1:
                interp = line[1].decode(errors="replace")
            return p if interp in SHELLS else None
        if head.startswith(b"\x7fELF") or b"\0" in head:
            return None
        return p

    def run_script_file(self, path: str, args: Sequence[str], env: Mapping[str, str], in_: Stream, out: Stream,
                        err: Stream, arg0: str) -> int:
        try:
            text = dec(self.fs.read_bytes(self.fs.path(path, self.cwd)))
        except OSError as e:
            err.write(enc(f"sh: {path}: {e.strerror}\n"))
            return 127
        child = self.new_process(env, in_, out, err, args=args, arg0=arg0)
        return child.run_script(text)

    def new_process(self, env: Mapping[str, str], in_: Stream, out: Stream, err: Stream, *, args: Sequence[str],
                    arg0: str) -> "Shell":
        child = Shell(self.fs, env, cwd=self.cwd, args=args, arg0=arg0, source_date_epoch=self.source_date_epoch,
                      limits=self.limits, deadline=self.deadline)
        child.start_shell()
        child.fds = {0: in_, 1: out, 2: err}
        child.steps = self.steps
        child.missing = self.missing
        child.exec_hook = self.exec_hook
        child.depth = self.depth + 1
        if child.depth > self.limits.max_depth:
            raise ShellError("sh: " + self.limits.depth_message())
        return child

    def run_sh(self, argv: list[str], env: Mapping[str, str], in_: Stream, out: Stream, err: Stream) -> int:
        """`sh [-euxf] [-o opt] (-c SCRIPT [arg0 args...] | FILE args... | < stdin)`."""
        opts: dict[str, bool] = {}
        i = 1
        command: str | None = None
        want_c = False
        names = {"e": "errexit", "u": "nounset", "x": "xtrace", "f": "noglob", "a": "allexport"}
        while i < len(argv):
            a = argv[i]
            if a == "--":
                i += 1
                break
            if a in ("-o", "+o") and i + 1 < len(argv):
                opts[argv[i + 1]] = a == "-o"
                i += 2
                continue
            if len(a) > 1 and a[0] in "-+" and a[1:].isalpha():
                if "o" in a[1:] and i + 1 < len(argv):
                    opts[argv[i + 1]] = a[0] == "-"
                    argv = argv[:i + 1] + argv[i + 2:]
                    a = a.replace("o", "")
                for c in a[1:]:
                    if c == "c":
                        want_c = True
                    elif c in names:
                        opts[names[c]] = a[0] == "-"
                    elif c in "ilsvhpB":
                        pass
                    else:
                        err.write(enc(f"sh: -{c}: invalid option\n"))
                        return 2
                i += 1
                continue
            break
        rest = argv[i:]
        if want_c:
            if not rest:
                err.write(enc("sh: -c requires an argument\n"))
                return 2
            command = rest[0]
            arg0 = rest[1] if len(rest) > 1 else argv[0]
            args = rest[2:]
            child = self.new_process(env, in_, out, err, args=args, arg0=arg0)
            child.options.update(opts)
            return child.run_script(command)
        if rest:
            path = rest[0]
            try:
                text = dec(self.fs.read_bytes(self.fs.path(path, self.cwd)))
            except OSError:
                err.write(enc(f"sh: can't open '{path}': No such file or directory\n"))
                return 2
            child = self.new_process(env, in_, out, err, args=rest[1:], arg0=path)
            child.options.update(opts)
            return child.run_script(text)
        text = dec(in_.read())
        child = self.new_process(env, Input(b""), out, err, args=(), arg0=argv[0])
        child.options.update(opts)
        return child.run_script(text)


class _RedirError(Exception):
    pass


def node_negated(p: Pipeline) -> bool:
    return p.negate


def _quote(w: str) -> str:
    if w and all(c.isalnum() or c in "-_./=:,+@%" for c in w):
        return w
    return "'" + w.replace("'", "'\\''") + "'"
