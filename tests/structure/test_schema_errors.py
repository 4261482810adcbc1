"""Structure-test YAML errors name the test (list, index and its name) and the field, with a did-you-mean for a
misspelt key."""

from __future__ import annotations

import pytest

from minibuild.errors import ConfigError
from minibuild.structure.schema import parse_config

HEAD = "schemaVersion: 2.0.0\n"


@pytest.mark.parametrize("body, message", [
    ("commandTests:\n  - name: say hi\n    command: echo\n    expectedOuptut: [hi]\n",
     'commandTests[0] "say hi": field expectedOuptut not found in type (did you mean expectedOutput?)'),
    ("commandTests:\n  - name: ok\n    command: 'true'\n  - name: say hi\n    command: echo\n    expectedOutput: hi\n",
     'commandTests[1] "say hi".expectedOutput: cannot unmarshal !!str into []string'),
    ("commandTests:\n  - name: say hi\n    command: echo\n    envVars: {A: b}\n",
     'commandTests[0] "say hi".envVars: cannot unmarshal !!map into a list'),
    ("fileExistenceTests:\n  - name: hello\n    path: /hello\n    uid: abc\n",
     'fileExistenceTests[0] "hello".uid: cannot unmarshal !!str `abc` into int'),
    ("fileExistenceTests:\n  - name: hello\n    path: /hello\n    shouldExsit: true\n",
     'fileExistenceTests[0] "hello": field shouldExsit not found in type (did you mean shouldExist?)'),
    ("fileContentTests:\n  - name: conf\n    path: /etc/x\n    expectedContents: port\n",
     'fileContentTests[0] "conf".expectedContents: cannot unmarshal !!str into []string'),
    ("fileContentTests:\n  - path: /etc/x\n    expectedContents: port\n",
     "fileContentTests[0].expectedContents: cannot unmarshal !!str into []string"),
])
def test_errors_name_the_test_and_the_field(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(HEAD + body, filename="st.yaml")
    assert str(exc.value) == f"st.yaml: error unmarshalling config: {message}"
