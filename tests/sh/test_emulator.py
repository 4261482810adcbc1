"""Unit tests of the emulated shell on its own: features, builtins, API, errors (expected values written by hand)."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from minibuild.sh import BUILTINS, ShellResult, run_argv, run_script


def sh(root: Path, script: str, **kw: object) -> ShellResult:
    kw.setdefault("env", {"PATH": "/usr/bin:/bin", "HOME": "/root"})
    return run_script(script, root=root, **kw)  # type: ignore[arg-type]


def out(root: Path, script: str, **kw: object) -> str:
    r = sh(root, script, **kw)
    return r.stdout.decode()


def test_api_result_and_args(plain_root: Path) -> None:
    r = run_script('echo "$0 $1 $#" >&2; echo ok; exit 3', root=plain_root, env={}, args=("a", "b"))
    assert r == ShellResult(exit_code=3, stdout=b"ok\n", stderr=b"sh a 2\n")


def test_stdin_and_cwd(plain_root: Path) -> None:
    (plain_root / "app").mkdir()
    r = run_script("pwd; tr a-z A-Z", root=plain_root, env={}, cwd="/app", stdin=b"abc\n")
    assert r.stdout == b"/app\nABC\n"


def test_builtins_listing_covers_the_brief() -> None:
    wanted = {"echo", "printf", "cat", "mkdir", "rm", "rmdir", "cp", "mv", "ln", "touch", "chmod", "chown", "ls",
              "test", "[", "true", "false", "pwd", "env", "basename", "dirname", "head", "tail", "wc", "sort",
              "uniq", "tee", "grep", "sed", "find", "tar", "gzip", "gunzip", "xargs", "which", "id", "whoami",
              "adduser", "addgroup", "useradd", "groupadd", "sleep", "seq", "date", "cut", "tr", "expr", "sh",
              "cd", "export", "unset", "set", "read", "eval", ".", "source", "local", "shift", "exit", "return"}
    assert wanted <= BUILTINS


def test_unknown_command_is_status_127_and_the_script_goes_on(plain_root: Path) -> None:
    r = sh(plain_root, "echo before; apk add --no-cache curl; echo rc=$?; (missing 2>/dev/null) || echo fallback")
    assert (r.exit_code, r.stdout) == (0, b"before\nrc=127\nfallback\n")
    assert r.stderr == b"sh: apk: not found\n"  # what busybox sh says; the hint is for the build's message
    assert [h.split(" ", 1)[0] for h in r.missing] == ["apk", "missing"]
    assert "neither an emulated builtin nor a shell script" in r.missing[0] and "--executor chroot" in r.missing[0]


def test_binary_on_path_is_status_127_with_a_hint(plain_root: Path) -> None:
    (plain_root / "usr" / "bin").mkdir(parents=True)
    (plain_root / "usr" / "bin" / "node").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 64)
    os.chmod(plain_root / "usr" / "bin" / "node", 0o755)
    r = sh(plain_root, "node --version || true; /usr/bin/node -v")
    assert (r.exit_code, r.stdout, r.stderr) == (127, b"", b"sh: node: not found\nsh: /usr/bin/node: not found\n")
    assert r.missing == ("node is a program in this image (/usr/bin/node), not a shell script or busybox applet the "
                         "emulated shell can run: use --executor chroot",
                         "/usr/bin/node is a program in this image (/usr/bin/node), not a shell script or busybox "
                         "applet the emulated shell can run: use --executor chroot")


def test_account_tools_of_the_image_are_not_replaced_by_busybox_syntax(plain_root: Path) -> None:
    sbin = plain_root / "usr" / "sbin"
    sbin.mkdir(parents=True)
    (sbin / "useradd").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 64)  # Debian: shadow's useradd
    (sbin / "adduser").write_text("#!/usr/bin/perl\nuse strict;\n")  # Debian: a Perl script
    for tool in ("useradd", "adduser"):
        os.chmod(sbin / tool, 0o755)
    before = (plain_root / "etc" / "passwd").read_bytes()
    r = sh(plain_root, "adduser -D -u 1001 builder || echo refused; useradd --create-home app; echo rc=$?",
           env={"PATH": "/usr/sbin:/usr/bin"})
    assert r.stdout == b"refused\nrc=127\n"
    assert r.missing == tuple(f"{t} is a program in this image (/usr/sbin/{t}), not a shell script or busybox applet "
                              f"the emulated shell can run: use --executor chroot" for t in ("adduser", "useradd"))
    assert (plain_root / "etc" / "passwd").read_bytes() == before
    (plain_root / "bin").mkdir()
    (plain_root / "bin" / "busybox").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 64)
    os.chmod(plain_root / "bin" / "busybox", 0o755)
    (sbin / "adduser").unlink()
    (sbin / "adduser").symlink_to("/bin/busybox")  # Alpine: busybox's applet, which the emulator plays
    r = sh(plain_root, "adduser -D -u 1001 builder && grep builder /etc/passwd", env={"PATH": "/usr/sbin:/bin"})
    assert (r.exit_code, r.stdout) == (0, b"builder:x:1001:1001:Linux User,,,:/home/builder:/bin/sh\n")
    (sbin / "groupadd").write_text("#!/bin/sh\necho \"own groupadd $*\"\n")  # a shell script of the image runs
    os.chmod(sbin / "groupadd", 0o755)
    assert sh(plain_root, "groupadd -r svc", env={"PATH": "/usr/sbin:/bin"}).stdout == b"own groupadd -r svc\n"


@pytest.mark.parametrize("shebang", ["#!/bin/sh", "#!/bin/bash", "#!/usr/bin/env sh", "#! /bin/ash -e"])
def test_shell_scripts_on_path_run_in_the_emulator(plain_root: Path, shebang: str) -> None:
    (plain_root / "usr" / "bin").mkdir(parents=True)
    tool = plain_root / "usr" / "bin" / "npm"
    tool.write_text(f'{shebang}\necho "npm $1 from $0 with $# args"; [ -n "$GREETING" ] && echo "$GREETING"\nexit 4\n')
    os.chmod(tool, 0o755)
    r = sh(plain_root, "export GREETING=hi; npm run build; echo rc=$?")
    assert r.stdout == b"npm run from /usr/bin/npm with 2 args\nhi\nrc=4\n"  # the kernel passes the path found


def test_run_argv_forms(plain_root: Path) -> None:
    env = {"PATH": "/bin"}
    (plain_root / "bin").mkdir()
    (plain_root / "bin" / "sh").write_bytes(b"")  # a placeholder is enough: the emulator interprets /bin/sh
    assert run_argv(["/bin/sh", "-c", "echo $0-$1", "zero", "one"], root=plain_root, env=env).stdout == b"zero-one\n"
    assert run_argv(["echo", "a", "b"], root=plain_root, env=env).stdout == b"a b\n"
    assert run_argv(["sh", "-ec", "false; echo no"], root=plain_root, env=env).exit_code == 1
    assert run_argv(["bash", "-c", "exit 9"], root=plain_root, env=env).exit_code == 9
    (plain_root / "s.sh").write_text("#!/bin/sh\necho script $1\n")
    os.chmod(plain_root / "s.sh", 0o755)
    assert run_argv(["/s.sh", "x"], root=plain_root, env=env).stdout == b"script x\n"
    r = run_argv(["nginx", "-g", "daemon off;"], root=plain_root, env=env)
    assert (r.exit_code, r.stderr) == (127, b"sh: nginx: not found\n") and r.missing[0].startswith("nginx is neither")


def test_syntax_error_is_exit_2(plain_root: Path) -> None:
    r = sh(plain_root, "if true; then echo")
    assert r.exit_code == 2 and b"syntax error" in r.stderr


def test_set_u_and_x(plain_root: Path) -> None:
    r = sh(plain_root, "set -u; echo $nope; echo after")
    assert r.exit_code == 2 and r.stdout == b"" and b"nope" in r.stderr
    r = sh(plain_root, "set -x; echo hi 'a b'")
    assert r.stderr == b"+ echo hi 'a b'\n"


def test_pipefail(plain_root: Path) -> None:
    assert sh(plain_root, "false | true").exit_code == 0
    assert sh(plain_root, "set -o pipefail; false | true").exit_code == 1
    assert sh(plain_root, "set -eo pipefail; false | true; echo no").stdout == b""


def test_errexit_in_function_called_from_condition_is_ignored(plain_root: Path) -> None:
    assert out(plain_root, "f() { false; echo in; }; set -e; if f; then echo ok; fi; f && echo ok2") == "in\nok\nin\nok2\n"


def test_read_and_ifs(plain_root: Path) -> None:
    text = "root:x:0:0:root:/root:/bin/sh\n"
    assert out(plain_root, "IFS=: read user pw uid rest; echo $user $uid $rest", stdin=text.encode()) == \
        "root 0 0:root:/root:/bin/sh\n"


def test_parameter_substitution_forms(plain_root: Path) -> None:
    assert out(plain_root, "v=hello.world.txt; echo ${v/o/0} ${v//o/0} ${v:2:3} ${v: -3} ${v%%.*}") == \
        "hell0.world.txt hell0.w0rld.txt llo txt hello\n"
    r = sh(plain_root, "echo ${missing:?must be set}; echo no")
    assert r.exit_code == 2 and b"must be set" in r.stderr


def test_arithmetic(plain_root: Path) -> None:
    assert out(plain_root, "a=5; echo $((a*2+1)) $((a>3 && a<10)) $((a++)) $a $((a+=10)) $((0x10)) $((010)) $((2**8))") == \
        "11 1 5 6 16 16 8 256\n"


def test_here_document_expansion_and_tab_strip(plain_root: Path) -> None:
    assert out(plain_root, "x=V\ncat <<-E\n\t$x `echo c` $((1+1))\n\tE\ncat <<'Q'\n$x\nQ\n") == "V c 2\n$x\n"


def test_sleep_does_not_wait(plain_root: Path) -> None:
    t0 = time.monotonic()
    assert sh(plain_root, "sleep 30; sleep 1h").exit_code == 0
    assert time.monotonic() - t0 < 5


def test_date_uses_source_date_epoch(plain_root: Path) -> None:
    assert out(plain_root, "date -u +%Y-%m-%dT%H:%M:%S", source_date_epoch=86400 * 365) == "1971-01-01T00:00:00\n"
    assert out(plain_root, "date +%s") == "0\n"


def test_output_is_deterministic(plain_root: Path) -> None:
    script = "mkdir -p /a/b; touch /a/b/c /a/x; find / | sort; ls -la /a | wc -l; date; echo $$ $PPID; mktemp; uname -a"
    first = sh(plain_root, script)
    import shutil
    shutil.rmtree(plain_root / "a")
    os.unlink(plain_root / "tmp" / "tmp.000000")
    assert sh(plain_root, script) == first


def test_umask_022_and_modes(plain_root: Path) -> None:
    sh(plain_root, "mkdir /d; touch /f; echo x > /g; mkdir -m 0700 /p; cp /f /h")
    modes = {n: os.stat(plain_root / n).st_mode & 0o7777 for n in ("d", "f", "g", "p", "h")}
    assert modes == {"d": 0o755, "f": 0o644, "g": 0o644, "p": 0o700, "h": 0o644}


def test_setgid_directory_passes_on_its_group_and_bit(plain_root: Path) -> None:
    """As mkdir(2) does (checked with real busybox: conformance case run-setgid-dir): the new subdirectory keeps
    the setgid bit, so what is made in it still gets the directory's group. Read as the image has it (the
    ownership overlay), the same as root and as any user."""
    from minibuild.fs.ownership import overlay_of

    sh(plain_root, "mkdir /shared; chown 0:50 /shared; chmod 2775 /shared; mkdir /shared/sub; mkdir -p /shared/a/b; "
                   "echo x > /shared/sub/g")
    view = overlay_of(plain_root)
    for rel in ("shared/sub", "shared/a", "shared/a/b"):
        assert view.lstat(plain_root / rel).st_mode & 0o7777 == 0o2755, rel
    assert view.lstat(plain_root / "shared/sub/g").st_gid == 50


def test_setgid_directory_group_wins_over_the_users(plain_root: Path) -> None:
    from minibuild.fs.ownership import overlay_of

    sh(plain_root, "mkdir /shared; chown 0:50 /shared; chmod 2777 /shared")
    sh(plain_root, "mkdir /shared/sub; echo x > /shared/sub/g; touch /shared/f", uid=1000, gid=1001)
    view = overlay_of(plain_root)
    for rel in ("shared/sub", "shared/sub/g", "shared/f"):
        st = view.lstat(plain_root / rel)
        assert (st.st_uid, st.st_gid) == (1000, 50), rel
    assert view.lstat(plain_root / "shared/sub").st_mode & 0o7777 == 0o2755


def test_files_created_belong_to_the_running_user(plain_root: Path) -> None:
    """As root and as any user: the owners are the image's (the ownership overlay), never the host's."""
    from minibuild.fs.ownership import overlay_of

    sh(plain_root, "mkdir /home; touch /home/f; mkdir -p /home/a/b; echo x > /home/g", uid=1000, gid=1001)
    for rel in ("home/f", "home/a", "home/a/b", "home/g"):
        st = overlay_of(plain_root).lstat(plain_root / rel)
        assert (st.st_uid, st.st_gid) == (1000, 1001), rel
    if os.geteuid() == 0:  # as root the host holds them too (the chroot executor's processes see them)
        assert (os.lstat(plain_root / "home" / "f").st_uid, os.lstat(plain_root / "home" / "f").st_gid) == (1000, 1001)


def test_chown_uses_root_passwd(plain_root: Path) -> None:
    (plain_root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1234:4321::/home/app:/bin/sh\n")
    (plain_root / "etc" / "group").write_text("root:x:0:\napp:x:4321:\nweb:x:777:\n")
    r = sh(plain_root, "mkdir -p /srv/x; touch /srv/x/f; chown -R app:web /srv; chown app: /etc/hosts 2>/dev/null; chown nosuch /srv; echo $?")
    assert r.stdout == b"1\n"
    from minibuild.fs.ownership import overlay_of

    st = overlay_of(plain_root).lstat(plain_root / "srv" / "x" / "f")
    assert (st.st_uid, st.st_gid) == (1234, 777)
    ls = sh(plain_root, "ls -ln /srv/x/f; stat -c '%u:%g %U:%G' /srv/x/f; find /srv -user app | sort")
    assert ls.stdout.decode().split("\n")[1:] == ["1234:777 app:web", "/srv", "/srv/x", "/srv/x/f", ""]
    assert ls.stdout.decode().split()[2:4] == ["1234", "777"]


def test_adduser_addgroup_busybox_style(plain_root: Path) -> None:
    (plain_root / "etc" / "shadow").write_text("root:*:0:0:99999:7:::\n")
    r = sh(plain_root, "addgroup -S www && adduser -S -D -H -G www -u 101 nginx && adduser -D app && "
                       "addgroup -g 2000 team && addgroup app team && id -u app && id -g nginx", source_date_epoch=86400 * 10)
    assert r.exit_code == 0, r.stderr
    passwd = (plain_root / "etc" / "passwd").read_text().splitlines()
    group = (plain_root / "etc" / "group").read_text().splitlines()
    assert passwd[-2:] == ["nginx:x:101:100::/home/nginx:/sbin/nologin".replace("::", ":Linux User,,,:"),
                           "app:x:1000:1000:Linux User,,,:/home/app:/bin/sh"]
    assert "www:x:100:" in group and "app:x:1000:" in group and "team:x:2000:app" in group
    assert (plain_root / "etc" / "shadow").read_text().splitlines()[-1] == "app:!:10:0:99999:7:::"
    assert (plain_root / "home" / "app").is_dir() and not (plain_root / "home" / "nginx").exists()
    assert r.stdout == b"1000\n100\n"


def test_useradd_groupadd_shadow_style(plain_root: Path) -> None:
    r = sh(plain_root, "groupadd -r svc && useradd -r -g svc -s /usr/sbin/nologin svc && groupadd -g 1500 dev && "
                       "useradd -m -u 1500 -g dev -G svc alice && useradd bob")
    assert r.exit_code == 0, r.stderr
    passwd = (plain_root / "etc" / "passwd").read_text().splitlines()
    assert passwd[-3:] == ["svc:x:999:999::/home/svc:/usr/sbin/nologin", "alice:x:1500:1500::/home/alice:/bin/sh",
                           "bob:x:1000:1000::/home/bob:/bin/sh"]
    group = (plain_root / "etc" / "group").read_text().splitlines()
    assert "svc:x:999:alice" in group and "dev:x:1500:" in group and "bob:x:1000:" in group
    assert (plain_root / "home" / "alice").is_dir() and not (plain_root / "home" / "bob").exists()
    assert sh(plain_root, "useradd bob").exit_code == 9


def test_whoami_and_id_follow_the_user(plain_root: Path) -> None:
    (plain_root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n")
    (plain_root / "etc" / "group").write_text("root:x:0:\nnode:x:1000:\n")
    assert out(plain_root, "whoami; id", uid=1000, gid=1000) == "node\nuid=1000(node) gid=1000(node) groups=1000(node)\n"


def test_find_delete_and_exec_plus(plain_root: Path) -> None:
    assert out(plain_root, "mkdir -p /c/a; touch /c/a/x.pyc /c/y.pyc /c/keep; find /c -name '*.pyc' -delete; find /c | sort") == \
        "/c\n/c/a\n/c/keep\n"


def test_sed_features(plain_root: Path) -> None:
    script = r"""printf 'one\ntwo\nthree\nfour\n' > /f
sed -n '2,3p' /f; sed '1!d' /f; sed '$d' /f | tail -n 1; sed -e '/two/a\
after' -e '/one/i before' /f | head -n 4; sed 'y/ot/OT/' /f | head -n 1; sed '2q' /f; sed = /f | head -n 2
echo 'path/to/x' | sed 's|/|\\|g'; echo aaa | sed 's/a/b/2'; echo 'Hello' | sed 's/hello/bye/I'; sed -i.bak 's/one/1/' /f; cat /f.bak | head -n 1; head -n 1 /f"""
    assert out(plain_root, script) == ("two\nthree\none\nthree\nbefore\none\ntwo\nafter\nOne\none\ntwo\n1\none\n"
                                       "path\\to\\x\naba\nbye\none\n1\n")


def test_grep_regex_dialects(plain_root: Path) -> None:
    script = r"""printf 'ab\naab\nb+\nx{2}\nxx\n' > /f
grep 'a\+b' /f | wc -l; grep -E 'a+b' /f | wc -l; grep 'b+' /f; grep -F 'x{2}' /f; grep -E 'x{2}' /f; grep -x ab /f; grep -w xx /f"""
    assert out(plain_root, script) == "2\n2\nb+\nx{2}\nxx\nab\nxx\n"


def test_tar_gzip_interoperate_with_python(plain_root: Path) -> None:
    sh(plain_root, "mkdir -p /s/d; echo hi > /s/d/f; ln -s d/f /s/l; tar czf /a.tgz -C /s .; echo z | gzip > /z.gz")
    with tarfile.open(plain_root / "a.tgz") as tf:
        names = sorted(m.name for m in tf.getmembers())
        assert tf.getmember("./l").linkname == "d/f"
    assert names == [".", "./d", "./d/f", "./l"]
    assert gzip.decompress((plain_root / "z.gz").read_bytes()) == b"z\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("pkg/bin/tool")
        data = b"#!/bin/sh\necho tool\n"
        info.size = len(data)
        info.mode = 0o755
        tf.addfile(info, io.BytesIO(data))
    (plain_root / "p.tar.gz").write_bytes(buf.getvalue())
    r = sh(plain_root, "mkdir /opt; tar -xzf /p.tar.gz -C /opt --strip-components=1; /opt/bin/tool; tar -tzf /p.tar.gz")
    assert r.stdout == b"tool\npkg/bin/tool\n"


def test_xargs_and_command_substitution_nesting(plain_root: Path) -> None:
    assert out(plain_root, "echo $(echo $(echo deep)) \"$(printf '%s-' a b)\"; printf 'a b\\nc\\n' | xargs -n1 echo x") == \
        "deep a-b-\nx a\nx b\nx c\n"


def test_subshell_copies_state_and_exit_trap(plain_root: Path) -> None:
    assert out(plain_root, "v=1; (v=2; f() { :; }; exit 0); echo $v; type f >/dev/null 2>&1 || echo nof; trap 'echo bye' EXIT; echo end") == \
        "1\nnof\nend\nbye\n"


def test_runaway_loop_is_stopped(plain_root: Path) -> None:
    from minibuild.errors import ShellError
    from minibuild.limits import RunLimits

    with pytest.raises(ShellError, match="more than 20000 commands"):
        run_script("while true; do :; done", root=plain_root, env={}, limits=RunLimits(max_commands=20_000))


def test_ls_long_and_chmod_symbolic(plain_root: Path) -> None:
    r = out(plain_root, "touch /f; chmod 4755 /f; chmod g-x,o=r /f; ls -l /f | cut -c1-10; chmod u=rwx,g=rx,o= /f; stat -c %a /f")
    assert r == "-rwsr--r--\n750\n"


def test_exec_form_shell_path_must_exist_in_the_root(tmp_path: Path) -> None:
    """Docker fails `RUN` when the image has no /bin/sh; a placeholder file or a symlink is enough to interpret it."""
    root = tmp_path / "r"
    (root / "bin").mkdir(parents=True)
    r = run_argv(("/bin/sh", "-c", "echo hi"), root=root, env={})
    assert r.exit_code == 127 and b"/bin/sh" in r.stderr and r.stdout == b""
    r = run_script("/bin/bash -c 'echo nested'; echo rc=$?", root=root, env={})
    assert r.stdout == b"rc=127\n" and b"/bin/bash" in r.stderr
    (root / "bin" / "busybox").write_bytes(b"")
    (root / "bin" / "sh").symlink_to("busybox")
    (root / "bin" / "bash").write_bytes(b"placeholder")
    assert run_argv(("/bin/sh", "-c", "echo hi"), root=root, env={}).stdout == b"hi\n"
    assert run_argv(("/bin/bash", "-c", "echo hi"), root=root, env={}).stdout == b"hi\n"
    assert run_argv(("sh", "-c", "echo bare"), root=root, env={}).stdout == b"bare\n"


def test_quoted_dollar_at_without_arguments_is_no_field(plain_root: Path) -> None:
    script = ('f() { echo "$#:$1"; }; f "$@"; f "${@}"; f "$*"; f "" "$@"; for a in "$@"; do echo it; done; '
              "set -- 'a b' '' c; f \"$@\"; f \"${@}\"; f \"$*\"; f $@; f x\"$@\"y")
    assert out(plain_root, script) == "0:\n0:\n1:\n1:\n3:a b\n3:a b\n1:a b  c\n3:a\n3:xa b\n"
