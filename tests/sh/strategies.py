"""Hypothesis strategies: random scripts in the supported sh subset, acting on a small namespace under /w."""

from __future__ import annotations

from hypothesis import strategies as st

FILES = ("/w/a", "/w/b", "/w/d/c", "/w/e/f", "/w/l")
DIRS = ("/w/d", "/w/e", "/w/d/s")
PATHS = FILES + DIRS
MODES = ("644", "600", "755", "700", "0444", "u+x", "go-r", "a+w", "u=rw,go=r", "o-x", "+x", "g+s")
VARS = ("V", "W", "X1")

plain_word = st.text(alphabet="abcxyz019", min_size=1, max_size=5)
spaced = st.text(alphabet="ab xz", min_size=0, max_size=6)


@st.composite
def word(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(plain_word)
    if kind == 1:
        return "'" + draw(spaced) + "'"
    if kind == 2:
        return '"' + draw(spaced) + '"'
    if kind == 3:
        v = draw(st.sampled_from(VARS))
        return draw(st.sampled_from([f"${v}", f'"${v}"', f"${{{v}:-dflt}}", f"${{#{v}}}", f'"${{{v}%a*}}"', f"${{{v}#?}}"]))
    if kind == 4:
        a, b = draw(st.integers(-9, 99)), draw(st.integers(-9, 99))
        op = draw(st.sampled_from(["+", "-", "*", "<", "==", "%"]))
        if op == "%" and b == 0:
            b = 7
        return f"$(({a}{op}{b}))"
    return draw(st.sampled_from(["/w/*", "/w/d/*", "'*'", "/w/?", "x*y"]))


@st.composite
def simple(draw: st.DrawFn) -> str:
    f = draw(st.sampled_from(FILES))
    f2 = draw(st.sampled_from(FILES))
    d = draw(st.sampled_from(DIRS))
    p = draw(st.sampled_from(PATHS))
    p2 = draw(st.sampled_from(PATHS))
    w = " ".join(draw(st.lists(word(), min_size=1, max_size=3)))
    choices = [
        f"mkdir -p {d}",
        f"mkdir {d}",
        f"echo {w} > {f}",
        f"echo {w} >> {f}",
        f"printf '%s\\n' {w} > {f}",
        f"cat {f}",
        f"rm -f {f}",
        f"rm -rf {d}",
        f"rm {p}",
        f"cp {f} {f2}",
        f"cp -r {p} {p2}",
        f"mv {p} {p2}",
        f"ln -s {p} {f2}",
        f"ln -sf {draw(st.sampled_from(['a', '../a', '/w/d', 'missing']))} {f2}",
        f"chmod {draw(st.sampled_from(MODES))} {p}",
        f"touch {f}",
        f"[ {draw(st.sampled_from(['-f', '-d', '-e', '-s', '-L', '-x']))} {p} ] && echo yes || echo no",
        f"test {w} = {draw(word())} && echo same",
        f"{draw(st.sampled_from(VARS))}={draw(word())}",
        f"echo {w}",
        f"echo {w} | tr a-z A-Z",
        f"echo {w} | wc -w",
        f"seq {draw(st.integers(0, 6))} | tail -n 2",
        f"grep -c a {f}",
        f"grep -q x {f} && echo has-x",
        f"sed 's/a/b/g' {f}",
        f"sed -i 's/x/q/' {f}",
        f"head -n 1 {f}",
        f"cat {f} | sort | uniq -c",
        f"ls {d}",
        "find /w | sort",
        f"(cd {d} && touch made)",
        f"cd {d}; pwd; cd /",
        "tar cf /w/t.tar -C /w d && tar tf /w/t.tar | sort; rm -f /w/t.tar",
        "false",
        "true",
        f"for v in {w}; do echo \"<$v>\"; done",
        f"case {draw(word())} in a*) echo A;; *[0-9]*) echo N;; *) echo O;; esac",
        f"if [ -d {p} ]; then echo dir; elif [ -f {p} ]; then echo file; else echo none; fi",
        f"x=$(cat {f} 2>/dev/null | wc -l); echo $x",
        f"basename {p}; dirname {p}",
        f"find /w -name '{draw(st.sampled_from(['a', '*', 'c*', '?']))}' -type f | sort",
        f"export {draw(st.sampled_from(VARS))}={draw(word())}; sh -c 'echo \"[$V][$W]\"'",
        f"printf '%s|%d|%3s\\n' {draw(word())} {draw(st.integers(-5, 50))} {draw(word())}",
        f"echo {w} | cut -c1-2",
        "echo 'a:b:c' | cut -d: -f2,3",
        f"seq {draw(st.integers(0, 12))} | sort -rn | head -n 2",
        f"echo {w} | xargs -n1 echo item",
        f"set -- {w}; echo $# \"$1\"",
        f"IFS=a; echo $V {w}; unset IFS",
        f"echo {w} | read v; echo \"[$v]\"",
        f"V=$(echo {w} | tr ' ' _); echo $V",
        f"ln -sfn {d} {f2}",
        f"mv {f} {d}",
        f"[ -e {p} -a ! -d {p2} ] && echo both",
        f"echo ${{{draw(st.sampled_from(VARS))}:=set}} ${{{draw(st.sampled_from(VARS))}:+alt}}",
        f"ls -a {d} | wc -l",
        f"wc -c < {f}",
        f"cd /w; ls {draw(st.sampled_from(['d', 'e', '.', '..', 'd/s']))}; cd /",
        f"cd /w && {draw(st.sampled_from(['touch d/rel', 'mkdir -p e/rel', 'echo r > ./x', 'rm -rf d', 'cp -r d e2']))}; cd /",
        # awk and more of the text applets; dated files (their mtimes are compared)
        f"awk '{{print NF \":\" $1}}' {f}",
        f"echo {w} | awk '{{n += NF; s = s $NF}} END {{print n+0, NR, s}}'",
        f"awk -F{draw(st.sampled_from(['a', ':', 'x', '[ab]']))} '{{print $2, NF}}' {f}",
        f"echo {w} | awk '{{for (i = NF; i > 0; i--) printf \"%s,\", $i; print \"\"}}'",
        f"awk 'NR == 1 {{print length($0)}} /a/ {{c++}} END {{print c + 0}}' {f}",
        f"echo {w} | awk '{{gsub(/[ab]/, \"<&>\"); print; print toupper(substr($0, 2, 3))}}'",
        f"printf '%s\\n' {w} | awk '{{a[$1]++}} END {{for (k in a) print k, a[k]}}'",
        f"touch -d @{draw(st.integers(0, 1_500_000_000))} {f}",
        f"touch -t {draw(st.sampled_from(['200001020304', '199912312359.59', '0101010101']))} {f}",
        f"printf '%s\\n' {w} | sort -r | uniq",
        f"printf 'b 2\\na 10\\nc 1\\n' | sort -k2,2n | cut -d' ' -f1",
        f"grep -n {draw(plain_word)} {f}",
        f"sed -n '1p;$p' {f}",
        f"echo {w} | tr -d a | wc -c",
        f"find /w -type f -name '*' | sort | wc -l",
        f"md5sum {f}",
        f"od -c {f} | head -n 2",
        f"[[ {draw(word())} == {draw(st.sampled_from(['a*', '*z', '?', 'x']))} ]] && echo m || echo n",
        f"let 'q = {draw(st.integers(0, 9))} * 2' && echo $q",
    ]
    return draw(st.sampled_from(choices))


@st.composite
def statement(draw: st.DrawFn, depth: int = 0) -> str:
    if depth >= 2 or draw(st.integers(0, 3)) > 0:
        return draw(simple())
    a = draw(statement(depth + 1))
    b = draw(statement(depth + 1))
    p = draw(st.sampled_from(PATHS))
    k = draw(st.integers(0, 3))
    forms = [
        f"if [ -e {p} ]; then {a}; else {b}; fi",
        f"for i in {draw(word())} {draw(word())}; do {a}; echo \"i=$i\"; done",
        f"{{ fn() {{ {a}; echo \"args=$# $1\"; }}; fn {draw(word())} x; }}",
        f"( {a}; {b} )",
        f"{{ {a}; {b}; }} > /w/o 2>/dev/null; cat /w/o",
        f"n=0; while [ $n -lt {k} ]; do {a}; n=$((n+1)); done; echo n=$n",
        f"{a}; echo \"rc=$?\"",
        f"! {a}; echo \"neg=$?\"",
        f"echo \"[$({a})]\"",
        f"cat > /w/h <<EOF\n{draw(spaced)} $V $(echo sub) $((2+{k}))\nEOF\ncat /w/h\n:",
        f"cat <<'EOF' | wc -l\n$V `x`\nline\nEOF\n:",
        f"case {draw(word())} in *a*) {a};; *) {b};; esac",
        f"{a} && {b}",
        f"{a} || {b}",
        f"{a} | sort",
    ]
    return draw(st.sampled_from(forms))


@st.composite
def script(draw: st.DrawFn) -> str:
    stmts = draw(st.lists(statement(), min_size=1, max_size=8))
    out: list[str] = []
    if draw(st.booleans()) and draw(st.booleans()):
        out.append("set -e")
    for s in stmts:
        out.append(s)
    seps = [draw(st.sampled_from(["; ", "\n", " && ", " || "])) for _ in out]
    text = out[0]
    for sep, s in zip(seps, out[1:]):
        text += sep + s
    if draw(st.integers(0, 9)) == 0:
        text += f"\nexit {draw(st.integers(0, 5))}"
    return "mkdir -p /w/d\n" + text
