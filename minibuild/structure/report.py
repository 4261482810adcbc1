"""Render a structure-test Summary as upstream's text, JSON (SummaryObject) or JUnit XML output."""

from __future__ import annotations

import json
import os

from minibuild.structure.gocompat import go_duration, go_float
from minibuild.structure.runner import Summary, TestResult

DEFAULT_JUNIT_SUITE = "container-structure-test.test"


def _banner_line(filename: str) -> str:
    return f"====== Test file: {os.path.basename(filename)} ======"


def render_text(summary: Summary) -> str:
    """Upstream's text output: a banner per config file, ``=== RUN``/``--- PASS|FAIL`` per test, the totals."""
    out: list[str] = []
    banner = 27
    by_file: dict[str, list[TestResult]] = {}
    for r in summary.results:
        by_file.setdefault(r.source, []).append(r)
    for f in summary.files or tuple(by_file):
        line = _banner_line(f)
        banner = len(line)
        out += ["", "=" * banner, line, "=" * banner]
        for r in by_file.pop(f, []):
            out += _result_lines(r)
    for rest in by_file.values():
        for r in rest:
            out += _result_lines(r)
    for note in summary.notes:
        out.append(f"Note: {note}")
    if banner % 2 == 0:
        banner += 1
    if summary.total == 0:
        out.append("No tests run! Check config file format.")
        return "\n".join(out) + "\n"
    side = "=" * ((banner - 9) // 2)
    out += ["", "=" * banner, f"{side} RESULTS {side}", "=" * banner,
            f"Passes:      {summary.passes}", f"Failures:    {summary.failures}",
            f"Duration:    {go_duration(summary.duration_ns)}", f"Total tests: {summary.total}", "",
            "PASS" if summary.failures == 0 else "FAIL"]
    return "\n".join(out) + "\n"


def _result_lines(r: TestResult) -> list[str]:
    lines = [f"=== RUN: {r.name}", "--- PASS" if r.passed else "--- FAIL", f"duration: {go_duration(r.duration_ns)}"]
    if r.stdout:
        lines.append(f"stdout: {r.stdout}")
    if r.stderr:
        lines.append(f"stderr: {r.stderr}")
    lines += [f"Error: {e}" for e in r.errors]
    return lines


def summary_json(summary: Summary) -> dict[str, object]:
    """The SummaryObject upstream marshals: Pass, Fail, Total, Duration (ns), Results (omitted when empty)."""
    out: dict[str, object] = {"Pass": summary.passes, "Fail": summary.failures, "Total": summary.total,
                              "Duration": summary.duration_ns}
    results = []
    for r in summary.results:
        item: dict[str, object] = {"Name": r.name, "Pass": r.passed}
        if r.stdout:
            item["Stdout"] = r.stdout
        if r.stderr:
            item["Stderr"] = r.stderr
        if r.errors:
            item["Errors"] = list(r.errors)
        item["Duration"] = r.duration_ns
        results.append(item)
    if results:
        out["Results"] = results
    return out


def render_json(summary: Summary) -> str:
    return json.dumps(summary_json(summary), separators=(",", ":"), ensure_ascii=False) + "\n"


def _xml_escape(text: str) -> str:
    """Go's xml.EscapeText (also used for attributes by encoding/xml)."""
    table = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\t": "&#x9;", "\n": "&#xA;",
             "\r": "&#xD;"}
    out = []
    for ch in text:
        code = ord(ch)
        if ch in table:
            out.append(table[ch])
        elif (code < 0x20 and ch not in "\t\n\r") or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
            out.append("\ufffd")
        else:
            out.append(ch)
    return "".join(out)


def render_junit(summary: Summary, suite_name: str = DEFAULT_JUNIT_SUITE) -> str:
    """JUnit XML exactly in upstream's shape: testsuites(failures, tests, time) > testsuite(name) > testcase."""
    e = _xml_escape
    cases = []
    for r in summary.results:
        failures = "".join(f"<failure>{e(x)}</failure>" for x in r.errors)
        cases.append(f'<testcase name="{e(r.name)}" time="{go_float(r.duration_ns / 1e9)}">{failures}'
                     f"<system-out>{e(r.stdout)}</system-out><system-err>{e(r.stderr)}</system-err></testcase>")
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f'<testsuites failures="{summary.failures}" tests="{summary.total}" '
            f'time="{go_float(summary.duration_ns / 1e9)}"><testsuite name="{e(suite_name)}">'
            + "".join(cases) + "</testsuite></testsuites>\n")


def render(summary: Summary, fmt: str) -> str:
    """``text``, ``json`` or ``junit``."""
    if fmt == "json":
        return render_json(summary)
    if fmt == "junit":
        return render_junit(summary)
    return render_text(summary)
