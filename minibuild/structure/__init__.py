"""container-structure-test (schemaVersion 2.0.0) runner over minibuild images: parse, run, report."""

from minibuild.structure.report import render, render_json, render_junit, render_text, summary_json
from minibuild.structure.runner import Summary, TestResult, run_config, run_structure_tests
from minibuild.structure.schema import StructureConfig, load_config, parse_config

__all__ = ["StructureConfig", "Summary", "TestResult", "load_config", "parse_config", "run_config",
           "run_structure_tests", "render", "render_text", "render_json", "render_junit", "summary_json"]
