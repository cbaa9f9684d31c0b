import pytest

from spyglass.errors.grouping import (
    GroupingConfig,
    RuleSyntaxError,
    parse_fingerprint_rules,
    parse_stacktrace_rules,
)


def test_fingerprint_rules_parse_matchers_values_and_title():
    rules = parse_fingerprint_rules(
        """
        # comment
        error.type:DatabaseUnavailable -> system-down
        message:"*timeout*" -> timeouts, {{ default }}
        !logger:"my app.*" tags.server_name:canary-* -> canary {{ tags.server_name }} title="Canary {{ level }}"
        type:Foo value:"a \\"quoted\\" b" -> foo,{{type}}
        """
    )
    assert [r.line for r in rules] == [3, 4, 5, 6]
    assert rules[0].fingerprint == ("system-down",)
    assert rules[1].fingerprint == ("timeouts", "{{ default }}")
    assert rules[1].matchers[0].pattern == "*timeout*"
    assert rules[2].matchers[0].negated and rules[2].matchers[0].pattern == "my app.*"
    assert rules[2].matchers[1].key == "tags.server_name"
    assert rules[2].fingerprint == ("canary", "{{ tags.server_name }}")
    assert rules[2].title == "Canary {{ level }}"
    assert rules[3].matchers[0].key == "error.type"  # alias
    assert rules[3].matchers[1].pattern == 'a "quoted" b'
    assert rules[3].fingerprint == ("foo", "{{ error.type }}")


def test_stacktrace_rules_parse_actions():
    rules = parse_stacktrace_rules(
        "stack.module:django.* -app\n"
        "\n"
        "family:javascript stack.abs_path:**/node_modules/** -app\n"
        "stack.function:log_error ^-group -group\n"
        "family:native max-frames=3\n"
    )
    assert [r.line for r in rules] == [1, 3, 4, 5]
    assert [str(a) for a in rules[2].actions] == ["^-group", "-group"]
    assert rules[3].max_frames == 3
    assert str(rules[1]) == "family:javascript stack.abs_path:**/node_modules/** -app"


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("error.type:Foo -> a\nerror.type:Bar system-down", 2, "expected"),
        ("error.type:Foo -> a\n\nbogus.key:x -> b", 3, "unknown matcher"),
        ("error.type:Foo ->", 1, "empty"),
        ("-> foo", 1, "at least one matcher"),
        ("error.type:Foo -> {{ nope }}", 1, "unknown variable"),
        ('message:"unterminated -> x', 1, "expected"),
        ("error.type:Foo -> a colour=\"red\"", 1, "unknown attribute"),
    ],
)
def test_fingerprint_syntax_errors_name_the_line(text, line, message):
    with pytest.raises(RuleSyntaxError) as err:
        parse_fingerprint_rules(text)
    assert err.value.line == line
    assert message in err.value.message
    assert str(err.value).startswith(f"line {line}: ")


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("stack.module:foo -app\nstack.module:bar +inapp", 2, "unknown action"),
        ("stack.module:foo", 1, "at least one action"),
        ("logger:foo -app", 1, "cannot be used"),
        ("-app", 1, "at least one matcher"),
        ("stack.module:x -app stack.function:y", 1, "before actions"),
        ("[ app:yes ] | stack.function:x -group", 1, "not supported"),
        ("app:maybe -app", 1, "yes or no"),
        ("stack.module:x max-frames=lots", 1, "number"),
    ],
)
def test_stacktrace_syntax_errors_name_the_line(text, line, message):
    with pytest.raises(RuleSyntaxError) as err:
        parse_stacktrace_rules(text)
    assert err.value.line == line
    assert message in err.value.message


def test_config_from_text():
    config = GroupingConfig.from_text("type:A -> a", "module:x -app")
    assert len(config.fingerprint_rules) == 1 and len(config.stacktrace_rules) == 1
    assert GroupingConfig.from_text() == GroupingConfig()
