"""The structure-test runner against a table of cases taken from upstream's v2 semantics (each field, each default).

Expected verdicts and messages come from container-structure-test's pkg/types/v2 (read, not copied): e.g.
shouldExist defaults to true, uid/gid -1 mean unchecked, ports are compared without their protocol, a nil cmd
is not checked while an empty one must match an image without Cmd, a regex that Go cannot compile fails both
expected and excluded checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from minibuild.store import Store
from minibuild.structure import parse_config, run_structure_tests
from minibuild.view import ImageView
from tests.structure.imagekit import d, f, hl, ln, make_image

BASE_CONFIG = dict(
    env=["PATH=/usr/local/bin:/usr/bin:/bin", "APP_HOME=/srv/app", "VERSION=test-2.1.8", "EMPTY="],
    cmd=["nginx", "-g", "daemon off;"], working_dir="/srv/app", user="www",
    labels={"org.example.vendor": "ACME Inc", "build-date": "2024-01-02T03:04:05"},
    exposed_ports=["80/tcp", "53/udp"], volumes=["/data"],
)


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> ImageView:
    store = Store.open(tmp_path_factory.mktemp("st") / "store")
    image = make_image(store, [
        [d("etc"), f("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/srv:/bin/false\n"),
         f("etc/nginx.conf", "worker_processes 1;\nlisten 80;\n", 0o600, 33, 33), d("tmp", 0o1777),
         f("usr/bin/tool", "#!/bin/sh\necho tool\n", 0o750, 0, 10), f("usr/bin/suid", "x", 0o4755),
         f("usr/bin/other-only", "x", 0o701), ln("usr/bin/link", "tool"), d("srv/app", 0o755, 1000, 1000),
         f("srv/app/index.html", "<h1>Hello</h1>", 0o644, 1000, 1000), hl("srv/app/same.html", "srv/app/index.html"),
         f("usr/share/doc/good/copyright", "License: MIT\n"), f("usr/share/doc/libgnutls30/README", "x"),
         f("old.txt", "old")],
        [f(".wh.old.txt"), f("usr/share/doc/bad/copyright", "GNU Affero General Public License (AGPL) v3\n")],
    ], **BASE_CONFIG)
    return ImageView(store, image)


def run(view: ImageView, yaml_text: str):  # type: ignore[no-untyped-def]
    cfg = parse_config("schemaVersion: 2.0.0\n" + yaml_text, filename="t.yaml")
    return run_structure_tests(view, [cfg])


# (id, yaml body, expected pass, substring every failure message list must contain (or ""))
CASES = [
    # ---------------------------------------------------------------- fileExistenceTests
    ("exists-default-shouldExist", "fileExistenceTests:\n- name: a\n  path: /etc/passwd\n", True, ""),
    ("missing-default-shouldExist-true", "fileExistenceTests:\n- name: a\n  path: /etc/nope\n", False,
     "Error examining file in container: File /etc/nope not found in image"),
    ("shouldExist-false-absent", "fileExistenceTests:\n- name: a\n  path: /etc/nope\n  shouldExist: false\n", True, ""),
    ("shouldExist-false-present", "fileExistenceTests:\n- name: a\n  path: /etc/passwd\n  shouldExist: false\n",
     False, "File /etc/passwd should not exist but does"),
    ("whiteout-hides-lower", "fileExistenceTests:\n- name: a\n  path: /old.txt\n  shouldExist: false\n", True, ""),
    ("perm-file", "fileExistenceTests:\n- name: a\n  path: /etc/passwd\n  permissions: '-rw-r--r--'\n", True, ""),
    ("perm-file-wrong", "fileExistenceTests:\n- name: a\n  path: /etc/passwd\n  permissions: '-rwxrwxrwx'\n", False,
     "/etc/passwd has incorrect permissions. Expected: -rwxrwxrwx, Actual: -rw-r--r--"),
    ("perm-dir", "fileExistenceTests:\n- name: a\n  path: /srv/app\n  permissions: drwxr-xr-x\n", True, ""),
    ("perm-sticky-dir", "fileExistenceTests:\n- name: a\n  path: /tmp\n  permissions: dtrwxrwxrwx\n", True, ""),
    ("perm-sticky-ls-form-differs", "fileExistenceTests:\n- name: a\n  path: /tmp\n  permissions: drwxrwxrwt\n",
     False, "Actual: dtrwxrwxrwx"),
    ("perm-setuid-go-form", "fileExistenceTests:\n- name: a\n  path: /usr/bin/suid\n  permissions: urwxr-xr-x\n",
     True, ""),
    ("perm-symlink-not-followed", "fileExistenceTests:\n- name: a\n  path: /usr/bin/link\n  permissions: Lrwxrwxrwx\n",
     True, ""),
    ("perm-not-checked-when-shouldExist-false",
     "fileExistenceTests:\n- name: a\n  path: /nope\n  shouldExist: false\n  permissions: '-rwxrwxrwx'\n", True, ""),
    ("uid-gid-match", "fileExistenceTests:\n- name: a\n  path: /srv/app/index.html\n  uid: 1000\n  gid: 1000\n",
     True, ""),
    ("uid-wrong", "fileExistenceTests:\n- name: a\n  path: /etc/nginx.conf\n  uid: 0\n", False,
     "/etc/nginx.conf has incorrect user ownership. Expected: 0, Actual: 33"),
    ("gid-wrong", "fileExistenceTests:\n- name: a\n  path: /usr/bin/tool\n  gid: 0\n", False,
     "/usr/bin/tool has incorrect group ownership. Expected: 0, Actual: 10"),
    ("uid-root-dir", "fileExistenceTests:\n- name: a\n  path: /\n  uid: 0\n  gid: 0\n", True, ""),
    ("hardlink-shares-owner", "fileExistenceTests:\n- name: a\n  path: /srv/app/same.html\n  uid: 1000\n", True, ""),
    ("exec-owner", "fileExistenceTests:\n- name: a\n  path: /usr/bin/tool\n  isExecutableBy: owner\n", True, ""),
    ("exec-group", "fileExistenceTests:\n- name: a\n  path: /usr/bin/tool\n  isExecutableBy: group\n", True, ""),
    ("exec-other-no", "fileExistenceTests:\n- name: a\n  path: /usr/bin/tool\n  isExecutableBy: other\n", False,
     "/usr/bin/tool has incorrect executable bit. Expected to be executable by other, Actual: -rwxr-x---"),
    ("exec-any-only-other", "fileExistenceTests:\n- name: a\n  path: /usr/bin/other-only\n  isExecutableBy: any\n",
     True, ""),
    ("exec-any-no", "fileExistenceTests:\n- name: a\n  path: /etc/passwd\n  isExecutableBy: any\n", False,
     "Expected to be executable by any"),
    ("exec-bad-option", "fileExistenceTests:\n- name: a\n  path: /etc/passwd\n  isExecutableBy: everyone\n", False,
     "everyone not recognised as a valid option"),
    ("path-env-substitution", "fileExistenceTests:\n- name: a\n  path: $APP_HOME/index.html\n", True, ""),
    ("path-global-env-substitution",
     "globalEnvVars:\n- key: CONF\n  value: /etc\nfileExistenceTests:\n- name: a\n  path: ${CONF}/passwd\n", True, ""),
    ("existence-needs-name", "fileExistenceTests:\n- path: /etc/passwd\n", False,
     "Please provide a valid name for every test"),
    ("existence-needs-path", "fileExistenceTests:\n- name: x\n", False, "Please provide a valid file path for test x"),
    # ---------------------------------------------------------------- fileContentTests
    ("content-expected", "fileContentTests:\n- name: c\n  path: /etc/nginx.conf\n  expectedContents: ['listen 80']\n",
     True, ""),
    ("content-expected-missing",
     "fileContentTests:\n- name: c\n  path: /etc/nginx.conf\n  expectedContents: ['listen 8080']\n", False,
     "Expected string 'listen 8080' not found in file content string"),
    ("content-excluded-found",
     "fileContentTests:\n- name: c\n  path: /etc/nginx.conf\n  excludedContents: ['worker_\\w+']\n", False,
     "Excluded string 'worker_\\w+' found in file content string"),
    ("content-regex-unanchored-search",
     "fileContentTests:\n- name: c\n  path: /etc/passwd\n  expectedContents: ['www:x:33']\n", True, ""),
    ("content-dollar-is-end-of-text",
     "fileContentTests:\n- name: c\n  path: /etc/nginx.conf\n  expectedContents: ['listen 80;$']\n", False,
     "not found"),
    ("content-multiline-flag",
     "fileContentTests:\n- name: c\n  path: /etc/nginx.conf\n  expectedContents: ['(?m)^listen 80;$']\n", True, ""),
    ("content-follows-symlink",
     "fileContentTests:\n- name: c\n  path: /usr/bin/link\n  expectedContents: ['echo tool']\n", True, ""),
    ("content-hardlink", "fileContentTests:\n- name: c\n  path: /srv/app/same.html\n  expectedContents: ['Hello']\n",
     True, ""),
    ("content-missing-file", "fileContentTests:\n- name: c\n  path: /nope\n", False,
     "Failed to open /nope. Error: File /nope not found in image"),
    ("content-directory", "fileContentTests:\n- name: c\n  path: /etc\n", False,
     "Cannot read specified path: /etc is a directory, not a file"),
    ("content-lookahead-is-not-re2-expected",
     "fileContentTests:\n- name: c\n  path: /etc/passwd\n  expectedContents: ['root(?=:)']\n", False, "not found"),
    ("content-lookahead-is-not-re2-excluded",
     "fileContentTests:\n- name: c\n  path: /etc/passwd\n  excludedContents: ['zzz(?=:)']\n", False,
     "Excluded string"),
    ("content-no-env-substitution", "fileContentTests:\n- name: c\n  path: $APP_HOME/index.html\n", False,
     "Failed to open $APP_HOME/index.html"),
    # ---------------------------------------------------------------- metadataTest
    ("meta-env", "metadataTest:\n  envVars:\n  - key: APP_HOME\n    value: /srv/app\n  - key: EMPTY\n    value: ''\n",
     True, ""),
    ("meta-env-wrong", "metadataTest:\n  envVars:\n  - key: APP_HOME\n    value: /app\n", False,
     "env var APP_HOME value /srv/app does not match expected value: /app"),
    ("meta-env-missing", "metadataTest:\n  envVars:\n  - key: NOPE\n    value: x\n", False,
     "variable NOPE not found in image env"),
    ("meta-env-regex", "metadataTest:\n  envVars:\n  - key: VERSION\n    value: '[a-z]+-2\\.1\\.*'\n    isRegex: true\n",
     True, ""),
    ("meta-env-not-regex-literal", "metadataTest:\n  envVars:\n  - key: VERSION\n    value: 'test-2.*'\n", False,
     "does not match expected value"),
    ("meta-unbound", "metadataTest:\n  unboundEnvVars:\n  - key: NOPE\n", True, ""),
    ("meta-unbound-bound", "metadataTest:\n  unboundEnvVars:\n  - key: PATH\n", False,
     "env variable PATH should not be present in image metadata"),
    ("meta-label", "metadataTest:\n  labels:\n  - key: org.example.vendor\n    value: ACME Inc\n", True, ""),
    ("meta-label-regex",
     "metadataTest:\n  labels:\n  - key: build-date\n    value: '^\\d{4}-\\d{2}-\\d{2}T'\n    isRegex: true\n", True, ""),
    ("meta-label-missing", "metadataTest:\n  labels:\n  - key: nope\n    value: x\n", False,
     "label nope not found in image metadata"),
    ("meta-ports-without-protocol", "metadataTest:\n  exposedPorts: ['80', '53']\n", True, ""),
    ("meta-ports-with-protocol-never-match", "metadataTest:\n  exposedPorts: ['80/tcp']\n", False,
     "Port 80/tcp not found in config"),
    ("meta-unexposed", "metadataTest:\n  unexposedPorts: ['443']\n", True, ""),
    ("meta-unexposed-but-exposed", "metadataTest:\n  unexposedPorts: ['80']\n", False, "Port 80 should not be exposed"),
    ("meta-cmd", "metadataTest:\n  cmd: ['nginx', '-g', 'daemon off;']\n", True, ""),
    ("meta-cmd-wrong-length", "metadataTest:\n  cmd: ['nginx']\n", False,
     "Image Cmd [nginx -g daemon off;] does not match expected Cmd: [nginx]"),
    ("meta-cmd-wrong-value", "metadataTest:\n  cmd: ['nginx', '-g', 'daemon on;']\n", False,
     "Image config Cmd [nginx -g daemon off;] does not match expected value"),
    ("meta-cmd-empty-list-vs-set", "metadataTest:\n  cmd: []\n", False, "does not match expected Cmd: []"),
    ("meta-cmd-null-not-checked", "metadataTest:\n  cmd: null\n  workdir: /srv/app\n", True, ""),
    ("meta-entrypoint-empty-matches-unset", "metadataTest:\n  entrypoint: []\n", True, ""),
    ("meta-entrypoint-wrong", "metadataTest:\n  entrypoint: ['/docker-entrypoint.sh']\n", False,
     "Image entrypoint [] does not match expected entrypoint: [/docker-entrypoint.sh]"),
    ("meta-workdir", "metadataTest:\n  workdir: /srv/app\n", True, ""),
    ("meta-workdir-wrong", "metadataTest:\n  workdir: /app\n", False,
     "Image workdir /srv/app does not match config workdir: /app"),
    ("meta-user", "metadataTest:\n  user: www\n", True, ""),
    ("meta-user-wrong", "metadataTest:\n  user: root\n", False, "Image user www does not match config user: root"),
    ("meta-volumes", "metadataTest:\n  volumes: [/data]\n  unmountedVolumes: [/root]\n", True, ""),
    ("meta-volume-missing", "metadataTest:\n  volumes: [/cache]\n", False, "Volume /cache not found in config"),
    ("meta-volume-mounted", "metadataTest:\n  unmountedVolumes: [/data]\n", False, "Volume /data should not be mounted"),
    ("meta-empty-key", "metadataTest:\n  envVars:\n  - value: x\n", False, "Environment variable key cannot be empty"),
    # ---------------------------------------------------------------- licenseTests
    ("license-files-ok", "licenseTests:\n- debian: false\n  files: [/usr/share/doc/good/copyright]\n", True, ""),
    ("license-debian-blacklisted", "licenseTests:\n- debian: true\n", False,
     "Invalid license for /usr/share/doc/bad/copyright, license contains AGPL"),
    ("license-file-missing", "licenseTests:\n- debian: false\n  files: [/nope]\n", False,
     "Error reading license file for /nope"),
]


@pytest.mark.parametrize(("yaml_text", "ok", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_upstream_semantics(view: ImageView, yaml_text: str, ok: bool, message: str) -> None:
    summary = run(view, yaml_text)
    assert summary.total == 1, summary
    result = summary.results[0]
    assert result.passed is ok, result.errors
    if message:
        assert any(message in e for e in result.errors), result.errors
    if ok:
        assert result.errors == ()


def test_debian_license_whitelist_and_missing_copyright(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    image = make_image(store, [[f("usr/share/doc/libgnutls30/README"), f("usr/share/doc/nocopy/README")]])
    summary = run_structure_tests(ImageView(store, image), [parse_config(
        "schemaVersion: '2.0.0'\nlicenseTests:\n- debian: true\n", filename="t.yaml")])
    errs = summary.results[0].errors
    assert any("Error reading license file for nocopy" in e for e in errs)
    assert not any("libgnutls30" in e for e in errs)


def test_empty_metadata_test_is_skipped_and_zero_tests_fail(view: ImageView) -> None:
    summary = run(view, "metadataTest: {}\n")
    assert summary.total == 0 and not summary.ok


def test_order_of_results_follows_upstream(view: ImageView) -> None:
    summary = run(view, "metadataTest:\n  user: www\nfileExistenceTests:\n- name: e\n  path: /etc\n"
                        "fileContentTests:\n- name: c\n  path: /etc/passwd\nlicenseTests:\n- debian: false\n")
    assert [r.name for r in summary.results] == ["File Content Test: c", "File Existence Test: e", "License Test",
                                                 "Metadata Test"]
