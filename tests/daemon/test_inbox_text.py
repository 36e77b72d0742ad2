"""Text from the inbox reaches no terminal as control characters (one helper, used by the
daemon's display and `orze submit`), and `orze submit` reports huge numbers clearly."""

from typer.testing import CliRunner

from orze.cli.app import app
from orze.daemon.display import Display, render_event
from orze.safe_text import printable
from orze.space import check_idea


def test_printable_escapes_control_and_invisible_characters():
    assert printable("plain name.yaml") == "plain name.yaml"
    assert printable("\x1b[31mred\x1b[0m\r\x07") == "\\x1b[31mred\\x1b[0m\\x0d\\x07"
    assert printable("bidi\u202egpj.yaml") == "bidi\\u202egpj.yaml"
    assert printable("x" * 10, limit=4) == "xxxx…"


def test_display_lines_are_sanitised(capsys):
    d = Display(quiet=False)
    d.live_mode = False
    text = render_event({"event": "rejected", "source": "\x1b]0;pwned\x07evil.yaml", "index": 0,
                         "errors": ["seed: bad"]})
    d.line(text)
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\\x1b]0;pwned\\x07evil.yaml#1: rejected" in err


def test_check_idea_reports_numbers_too_large_for_a_float(default_space):
    for value in (10 ** 400, 10 ** 5000):
        check = check_idea(default_space, {"seed": value, "rationale": value})
        assert not check.ok
        assert any(e.startswith("seed: an integer of") for e in check.errors), check.errors
        assert any(e.startswith("rationale: an integer of") for e in check.errors), check.errors


def test_submit_reports_a_huge_integer_per_idea_and_admits_its_siblings(tmp_path):
    from orze.cli.init import init_directory
    from orze.demo.synth import generate
    from orze.layout import Layout

    root = tmp_path / "r"
    init_directory(root)
    generate(Layout.at(root), n_clips=20, frames=4, seed=0, backbones=("vjepa2",))  # the ideas' store
    f = tmp_path / "ideas.yaml"
    f.write_text(f"- seed: 1\n- seed: {'9' * 500}\n- seed: 3\n")
    res = CliRunner().invoke(app, ["submit", str(f), "--root", str(root)])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    assert res.exit_code == 0, res.output
    assert "2 admitted, 1 rejected" in res.output
    assert "an integer of 500 digits is too large" in res.output
    f.write_text(f"seed: {'9' * 500}\n")
    res = CliRunner().invoke(app, ["submit", str(f), "--root", str(root)])
    assert res.exit_code == 1 and "0 admitted, 1 rejected" in res.output


def test_submit_refuses_a_file_over_max_file_bytes_before_reading_it_all(tmp_path):
    from orze.cli.init import init_directory

    root = tmp_path / "r"
    init_directory(root)
    f = tmp_path / "big.yaml"
    with open(f, "wb") as fh:
        fh.write(b"seed: 1\n")
        fh.truncate(1 << 31)
    res = CliRunner().invoke(app, ["submit", str(f), "--root", str(root)])
    assert res.exit_code == 2 and "larger than admission.max_file_bytes" in res.output
