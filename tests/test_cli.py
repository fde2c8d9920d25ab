"""dcu.cli: errors on standard error, in one line, with Unix exit codes."""

import pytest

import dcu.jobs.enhance
from dcu.cli import main


def test_usage_without_a_command_goes_to_stderr(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "usage: dcu COMMAND" in err
    assert main(["--help"]) == 0 and "usage" in capsys.readouterr().out  # asked for: stdout


def test_an_unexpected_exception_is_one_line_not_a_traceback(capsys, monkeypatch):
    def broken(argv):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(dcu.jobs.enhance, "enhance_cli", broken)
    assert main(["enhance", "x.wav"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == ("dcu enhance: error: ZeroDivisionError: division by zero "
                                         "(set DCU_DEBUG=1 to see the traceback)")
    monkeypatch.setenv("DCU_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["enhance", "x.wav"])


def test_a_reader_that_quits_early_is_not_an_error(capsys, monkeypatch):
    def quits(argv):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(dcu.jobs.enhance, "enhance_cli", quits)
    assert main(["enhance", "x.wav"]) == 141
    assert capsys.readouterr().err == ""


def test_output_piped_into_head_ends_quietly():
    import subprocess
    import sys

    # 400 kB of output, more than a pipe holds: the writer is still writing when the reader quits
    code = ("import sys, dcu.store.command as c; from dcu.cli import main; "
            "c.describe = lambda path: 'line\\n' * 80000; sys.exit(main(['checkpoint', 'info', 'x']))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"line\n"
    proc.stdout.close()
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == b""
