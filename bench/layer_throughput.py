"""Benchmark: layer creation throughput (tar + sha256, and gzip) vs GNU `tar -c | sha256sum` on the same tree.

Standalone script, not a test:  python bench/layer_throughput.py [--size-mb 200] [--files 5000] [--levels 1,6,9]

Builds a deterministic tree (about 60% compressible text-like files, 40% incompressible pseudo-random bytes, in
nested directories) in a temporary directory, then times in the same run:
  * GNU tar:      tar -c --sort=name ... | sha256sum
  * minibuild:    entries_for_paths + write_layer(compression="none") into a hashing null sink (diff_id + digest)
  * minibuild:    write_layer(compression="gzip", level=L) for each requested level
and prints MB/s (tree bytes / wall time), output size, and the ratio to GNU tar.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minibuild.fs.diff import entries_for_paths  # noqa: E402
from minibuild.store.tarlayer import write_layer  # noqa: E402

WORDS = [w.encode() for w in (
    "the of and to in is for on that with as by this from are be at or an it not have which if may all other "
    "layer image build docker file tree digest config manifest index blob store cache stage copy run env user "
    "def return import class self none true false while else elif try except raise yield lambda async await"
).split()]


def make_tree(root: Path, total_bytes: int, nfiles: int, seed: int = 42) -> int:
    rnd = random.Random(seed)
    avg = total_bytes // nfiles
    written = 0
    for i in range(nfiles):
        d = root / f"d{i % 50:02d}" / f"s{(i // 50) % 10}"
        d.mkdir(parents=True, exist_ok=True)
        size = max(1, int(rnd.uniform(0.2, 1.8) * avg)) if i < nfiles - 1 else max(1, total_bytes - written)
        if i % 5 < 3:  # text-like
            words = []
            n = 0
            while n < size:
                w = WORDS[rnd.randrange(len(WORDS))]
                words.append(w)
                n += len(w) + 1
            data = b" ".join(words)[:size]
        else:
            data = rnd.randbytes(size)
        (d / f"f{i:05d}.dat").write_bytes(data)
        written += len(data)
    return written


class NullSink:
    def write(self, b: bytes) -> int:
        return len(b)


def time_it(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--levels", default="1,6,9")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="minibuild-bench-"))
    try:
        tree = tmp / "tree"
        tree.mkdir()
        total = make_tree(tree, args.size_mb * 1_000_000, args.files)
        mb = total / 1e6
        print(f"tree: {args.files} files, {mb:.1f} MB in {tree}")
        subprocess.run(["sync"], check=False)
        # warm the page cache once so every contender reads from memory
        subprocess.run("tar -c -C %s . > /dev/null" % tree, shell=True, check=True)

        gnu_t, gnu_out = time_it(lambda: subprocess.run(
            f"tar -c --sort=name --numeric-owner -C {tree} . | sha256sum", shell=True, check=True,
            capture_output=True, text=True).stdout.split()[0])
        print(f"GNU tar -c | sha256sum        {gnu_t:7.2f} s  {mb / gnu_t:8.1f} MB/s   (sha256 {gnu_out[:12]})")

        def ours(compression: str, level: int = 6):  # type: ignore[no-untyped-def]
            entries = entries_for_paths(tree, [""])
            return write_layer(entries, NullSink(), compression=compression, level=level)  # type: ignore[arg-type]

        t, info = time_it(lambda: ours("none"))
        print(f"minibuild tar+sha256          {t:7.2f} s  {mb / t:8.1f} MB/s   ratio to GNU {gnu_t / t:5.2f}x"
              f"   size {info.size / 1e6:.1f} MB")
        for level in (int(x) for x in args.levels.split(",")):
            t, info = time_it(lambda: ours("gzip", level))
            print(f"minibuild gzip -{level} +sha256     {t:7.2f} s  {mb / t:8.1f} MB/s   ratio to GNU {gnu_t / t:5.2f}x"
                  f"   size {info.size / 1e6:.1f} MB ({100 * info.size / info.uncompressed_size:.1f}% of tar)")
        print("ratio = GNU tar time / minibuild time (1.0 = as fast as GNU tar; gzip rows include compression)")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
